//! Shared data keyed by (vm_id, key) with CAS tokens, as proxy-wasm-cpp-host's `SharedData`.

use std::collections::HashMap;

/// Why a `set` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    CasMismatch,
}

#[derive(Debug)]
pub struct SharedData {
    data: HashMap<(String, String), (Vec<u8>, u32)>,
    next_cas: u32,
}

impl Default for SharedData {
    fn default() -> Self {
        SharedData {
            data: HashMap::new(),
            next_cas: 1,
        }
    }
}

impl SharedData {
    pub fn get(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.data
            .get(&(vm_id.to_string(), key.to_string()))
            .cloned()
    }

    /// cas 0 always writes; a non-zero cas must match an existing key. A non-zero cas on a
    /// missing key writes too: cpp-host only compares when the key exists.
    pub fn set(&mut self, vm_id: &str, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let cas_next = self.next_cas();
        let entry = self.data.entry((vm_id.to_string(), key.to_string()));
        match entry {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if cas != 0 && cas != e.get().1 {
                    return Err(SetError::CasMismatch);
                }
                e.insert((value.to_vec(), cas_next));
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((value.to_vec(), cas_next));
            }
        }
        Ok(())
    }

    /// One global counter that skips 0 on wrap-around, so 0 keeps meaning "no CAS".
    fn next_cas(&mut self) -> u32 {
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        cas
    }

    pub fn keys(&self, vm_id: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .data
            .keys()
            .filter(|(v, _)| v == vm_id)
            .map(|(_, k)| k.clone())
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_rules() {
        let mut d = SharedData::default();
        assert_eq!(d.get("vm", "k"), None);
        d.set("vm", "k", b"a", 0).unwrap();
        let (_, c1) = d.get("vm", "k").unwrap();
        assert_eq!(d.set("vm", "k", b"b", c1 + 7), Err(SetError::CasMismatch));
        d.set("vm", "k", b"b", c1).unwrap();
        let (v, c2) = d.get("vm", "k").unwrap();
        assert_eq!(v, b"b");
        assert_ne!(c1, c2);
        // non-zero cas on a missing key is accepted
        d.set("vm", "missing", b"x", 12345).unwrap();
        // other vm_id does not see it
        assert_eq!(d.get("other", "k"), None);
    }
}
