//! syslog-ng for the tests: started with a configuration of the test's own, its state files in a
//! scratch directory, killed on drop. The audit-log tests ship Envoy's access log through one
//! syslog-ng (RFC 5424 over TCP) to a second one, as a SIEM's collector would receive it.
//!
//! syslog-ng is a Debian package (`syslog-ng-core`, installed by `scripts/setup.sh`);
//! [`SyslogNg::binary`] is `None` when it is not installed, and a test then fails saying so.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::scratch_dir;

/// A running syslog-ng.
pub struct SyslogNg {
    child: Child,
    dir: PathBuf,
}

impl SyslogNg {
    /// The `syslog-ng` on the PATH (or in `/usr/sbin`), if installed.
    pub fn binary() -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|d| d.join("syslog-ng"))
            .find(|p| p.is_file())
    }

    /// Starts syslog-ng in the foreground with `config` (the text of a `syslog-ng.conf`). Panics
    /// with its output when it exits at once (a configuration it refused).
    pub fn start(name: &str, config: &str) -> SyslogNg {
        let binary = Self::binary()
            .unwrap_or_else(|| panic!("syslog-ng is not installed (Debian: syslog-ng-core)"));
        let dir = scratch_dir(&format!("syslog-ng-{name}"));
        let conf = dir.join("syslog-ng.conf");
        fs::write(&conf, config).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let out = fs::File::create(dir.join("syslog-ng.out"))
            .unwrap_or_else(|e| panic!("create syslog-ng.out: {e}"));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("clone syslog-ng.out: {e}"));
        let child = Command::new(binary)
            .arg("--foreground")
            .arg("--stderr")
            .arg("--no-caps")
            .arg(format!("--cfgfile={}", conf.display()))
            .arg(format!("--persist-file={}", dir.join("persist").display()))
            .arg(format!("--pidfile={}", dir.join("pid").display()))
            .arg(format!("--control={}", dir.join("ctl").display()))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn syslog-ng: {e}"));
        let mut s = SyslogNg { child, dir };
        thread::sleep(Duration::from_millis(300));
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!(
                "syslog-ng {name} exited at once ({status}):\n{}",
                s.output()
            );
        }
        s
    }

    /// Waits until something accepts TCP connections on `127.0.0.1:port`.
    pub fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                panic!("syslog-ng does not listen on {port}:\n{}", self.output());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("syslog-ng exited ({status}):\n{}", self.output());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What syslog-ng printed (its own messages, with `--stderr`).
    pub fn output(&self) -> String {
        fs::read_to_string(self.dir.join("syslog-ng.out")).unwrap_or_default()
    }

    /// This instance's directory (configuration, state, output).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "syslog-ng files kept for the failed test: {}",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
