//! The two traits a filter implements. The adapter in [`crate::wasm`] drives them from proxy-wasm
//! callbacks; [`crate::testing`] drives them natively.

use crate::config::ConfigError;
use crate::host::{CalloutResponse, GrpcResponse, Host};

/// What a stream callback asks of the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Go on to the next filter (or, from a later callback, resume the paused stream).
    Continue,
    /// Hold the stream: it is waiting for something, or a local reply was sent.
    Pause,
}

/// One per worker (VM): holds the parsed configuration and per-worker state, creates streams.
pub trait RootFilter: Sized + 'static {
    type Stream: StreamFilter;
    /// The filter's name in metric names, shared-data keys and logs (`jwt_auth`).
    const NAME: &'static str;
    /// Whether the adapter records this filter's decisions (`shieldwall.decision.<NAME>`). Off
    /// only for a filter that runs others and records for each of them (the one-module chain).
    const RECORDS_DECISIONS: bool = true;

    /// Parses and validates the plugin configuration. An error makes `on_configure` return false
    /// and is logged with the field path.
    fn configure(host: &mut dyn Host, config: &[u8]) -> Result<Self, ConfigError>;

    /// Creates the filter for one HTTP stream.
    fn new_stream(&mut self, host: &mut dyn Host, context_id: u32) -> Self::Stream;

    fn on_tick(&mut self, _host: &mut dyn Host) {}
    fn on_http_call_response(
        &mut self,
        _host: &mut dyn Host,
        _token: u32,
        _response: CalloutResponse,
    ) {
    }
    fn on_grpc_call_response(
        &mut self,
        _host: &mut dyn Host,
        _token: u32,
        _response: GrpcResponse,
    ) {
    }
}

/// One per HTTP stream.
pub trait StreamFilter: 'static {
    fn on_request_headers(&mut self, _host: &mut dyn Host, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// Called per body chunk; return `Pause` to buffer until `end_of_stream`.
    fn on_request_body(
        &mut self,
        _host: &mut dyn Host,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }
    /// The request's trailers arrived: the body (if any) ended without an `end_of_stream` chunk.
    /// A filter that holds the body until its end must decide here too, or a request with
    /// trailers would pass unchecked.
    fn on_request_trailers(&mut self, _host: &mut dyn Host) -> Action {
        Action::Continue
    }
    fn on_response_headers(&mut self, _host: &mut dyn Host, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// The reply to a callout this stream made. `Continue` resumes the stream if it was paused.
    fn on_http_call_response(
        &mut self,
        _host: &mut dyn Host,
        _token: u32,
        _response: CalloutResponse,
    ) -> Action {
        Action::Continue
    }
    fn on_grpc_call_response(
        &mut self,
        _host: &mut dyn Host,
        _token: u32,
        _response: GrpcResponse,
    ) -> Action {
        Action::Continue
    }
    /// The root context woke this paused stream (`Host::wake_stream`). `Continue` resumes it.
    fn on_wake(&mut self, _host: &mut dyn Host) -> Action {
        Action::Continue
    }
    /// The stream is over (access-log time): every request, allowed or denied, passes here.
    fn on_log(&mut self, _host: &mut dyn Host) {}
    /// The stream is being destroyed.
    fn on_done(&mut self, _host: &mut dyn Host) {}
}
