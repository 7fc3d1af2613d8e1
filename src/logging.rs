//! Log output: human-readable on a terminal, plain with journal priority
//! prefixes under systemd (`JOURNAL_STREAM`), or JSON lines for shippers.
//! `RUST_LOG` overrides `log.level`.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Journal,
    Json,
}

/// The format to use: the command line wins over `log.format`; `auto` means
/// journal when stderr is connected to the journal.
pub fn format(cli: Option<&str>, config: &Config) -> Result<Format, String> {
    let json = match cli {
        Some("json") => true,
        Some("auto") => false,
        Some(other) => {
            return Err(format!(
                "--log-format: {other:?} is not one of \"auto\", \"json\""
            ))
        }
        None => config.log.format == LogFormat::Json,
    };
    Ok(if json {
        Format::Json
    } else if std::env::var_os("JOURNAL_STREAM").is_some() {
        Format::Journal
    } else {
        Format::Human
    })
}

/// Installs the global subscriber (stderr).
pub fn init(level: &str, format: Format) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = match format {
        Format::Human => builder.with_target(false).try_init(),
        Format::Json => builder.json().with_current_span(true).try_init(),
        Format::Journal => builder
            .with_ansi(false)
            .event_format(JournalFormat)
            .try_init(),
    };
}

/// `<3>message key=value`: the journal reads the priority from the prefix
/// and adds its own timestamp.
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}: ", span.name())?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
