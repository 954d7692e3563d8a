//! Structured logs: JSON unless a person is watching the terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Libraries whose routine messages (migration progress, server notices)
/// are too chatty at info.
const QUIET_TARGETS: &str = "refinery_core=warn,tokio_postgres=warn";

/// Installs the global subscriber. Logs go to stderr, so stdout stays free
/// for what commands print (such as a new API key). `level` is the
/// configured filter, or a quieter one for one-shot commands.
pub fn init(settings: &LogSettings, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},{QUIET_TARGETS}")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests build several apps) keeps the first subscriber.
    let _ = result;
}
