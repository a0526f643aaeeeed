//! Rendering: items as JSON, sizes, keys on the command line, progress, logs.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use vhs::maintenance::Progress;
use vhs::types::AttributeValue;
use vhs::Item;

/// Writes one line to stdout. A closed stdout (`vhs ls | head`) ends the
/// process quietly, as it would a Unix tool killed by SIGPIPE, instead of
/// panicking.
pub fn emit(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(5);
    }
}

/// `println!` through [`emit`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::emit(format_args!($($arg)*))
    };
}

/// Logs and spans to stderr: warnings (cleanup leftovers) always; with `-v`
/// the library's operation spans, `-vv` its requests, `-vvv` everything.
pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "warn,vhs_core=info",
        2 => "warn,vhs_core=debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(if verbose > 0 {
            FmtSpan::CLOSE
        } else {
            FmtSpan::NONE
        })
        .with_target(false)
        .try_init();
}

/// A DynamoDB attribute as plain JSON: strings, numbers (as JSON numbers when
/// they fit exactly, else as strings), booleans, null, lists, maps; binary as
/// `{"$base64": ...}` and sets as `{"$set": [...]}`.
pub fn attribute_json(value: &AttributeValue) -> Value {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number_json(n),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(b) => json!({ "$base64": b64(b.as_ref()) }),
        AttributeValue::L(l) => Value::Array(l.iter().map(attribute_json).collect()),
        AttributeValue::M(m) => item_json(m),
        AttributeValue::Ss(s) => json!({ "$set": s }),
        AttributeValue::Ns(n) => {
            json!({ "$set": n.iter().map(|n| number_json(n)).collect::<Vec<_>>() })
        }
        AttributeValue::Bs(b) => {
            json!({ "$set": b.iter().map(|b| json!({ "$base64": b64(b.as_ref()) })).collect::<Vec<_>>() })
        }
        other => Value::String(format!("{other:?}")),
    }
}

fn number_json(n: &str) -> Value {
    if let Ok(i) = n.parse::<i64>() {
        return Value::from(i);
    }
    match n.parse::<f64>() {
        Ok(f) if f.is_finite() && f.to_string() == n => Value::from(f),
        _ => Value::String(n.to_owned()),
    }
}

/// An item as a JSON object, attributes sorted by name.
pub fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let mut map = Map::new();
    for name in names {
        map.insert(name.clone(), attribute_json(&item[name]));
    }
    Value::Object(map)
}

/// `1.5 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Splits a command-line KEY (`HASH` or `HASH/RANGE`, with `%XX` escapes)
/// into its parts.
pub fn parse_key(text: &str) -> Result<(String, Option<String>), String> {
    let mut parts = text.split('/');
    let hash = decode(parts.next().unwrap_or_default())?;
    let range = parts.next().map(decode).transpose()?;
    if parts.next().is_some() {
        return Err(format!(
            "key {text:?} has more than two parts; write a '/' inside a value as %2F"
        ));
    }
    Ok((hash, range))
}

fn decode(part: &str) -> Result<String, String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{part:?}: '%' must start an escape such as %2F or %25"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{part:?} decodes to bytes that are not UTF-8"))
}

/// The command-line form of an item's key: `HASH` or `HASH/RANGE`, each part
/// with `%` written `%25` and `/` written `%2F` (nothing else escaped), so the
/// parts cannot be mistaken and [`parse_key`] gives them back.
pub fn format_key(item: &Item, hash: &str, range: Option<&str>) -> String {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) | Some(AttributeValue::N(s)) => s.clone(),
        _ => "?".to_owned(),
    };
    let parts = std::iter::once(text(hash)).chain(range.map(text));
    key_of_parts(parts)
}

/// The command-line form of a key given as its parts' text (hash, range).
pub fn key_of_parts<S: AsRef<str>>(parts: impl IntoIterator<Item = S>) -> String {
    parts
        .into_iter()
        .map(|p| p.as_ref().replace('%', "%25").replace('/', "%2F"))
        .collect::<Vec<_>>()
        .join("/")
}

/// The item without vhs's bookkeeping attributes (`vhs:*`).
pub fn without_bookkeeping(item: &Item) -> Item {
    item.iter()
        .filter(|(name, _)| !name.starts_with("vhs:"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// Reports [`Progress`]: bars on a terminal, a plain line every few seconds
/// otherwise (and a last line when done).
pub struct Reporter {
    bar: Option<ProgressBar>,
    plain: Mutex<(Instant, String)>,
    what: &'static str,
}

impl Reporter {
    /// For the command `what` (`gc`, `verify`, `stats`). Text output only:
    /// with JSON output nothing but the document is printed (to stdout; progress
    /// would go to stderr, but a script has no use for it).
    pub fn new(what: &'static str, quiet: bool) -> Reporter {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Reporter {
            bar,
            plain: Mutex::new((Instant::now(), String::new())),
            what: if quiet { "" } else { what },
        }
    }

    /// One progress report.
    pub fn report(&self, progress: Progress) {
        if self.what.is_empty() {
            return;
        }
        let message = match progress {
            Progress::ItemsScanned(n) => format!("{n} items scanned"),
            Progress::ObjectsListed(n) => format!("{n} objects listed"),
            Progress::PointersChecked(n) => format!("{n} pointers checked"),
            Progress::ObjectsDeleted(n) => format!("{n} objects deleted"),
            _ => return,
        };
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => {
                let mut last = self.plain.lock().unwrap_or_else(|e| e.into_inner());
                if last.0.elapsed() >= Duration::from_secs(5) {
                    eprintln!("{}: {message}", self.what);
                    last.0 = Instant::now();
                }
                last.1 = message;
            }
        }
    }

    /// Ends the bar (or prints the last plain line).
    pub fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None if !self.what.is_empty() => {
                let last = self.plain.lock().unwrap_or_else(|e| e.into_inner());
                if !last.1.is_empty() {
                    eprintln!("{}: {}", self.what, last.1);
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_text() {
        let mut item = Item::new();
        item.insert("pk".into(), AttributeValue::S("a/b%c d".into()));
        item.insert("sk".into(), AttributeValue::N("12".into()));
        let text = format_key(&item, "pk", Some("sk"));
        assert_eq!(text, "a%2Fb%25c d/12");
        assert_eq!(
            parse_key(&text),
            Ok(("a/b%c d".to_owned(), Some("12".to_owned())))
        );
        assert_eq!(parse_key("plain"), Ok(("plain".to_owned(), None)));
        assert_eq!(
            parse_key("lower%2fcase"),
            Ok(("lower/case".to_owned(), None))
        );
        assert!(parse_key("a/b/c").is_err());
        assert!(parse_key("bad%zz").is_err());
    }

    #[test]
    fn attributes_render_as_plain_json() {
        let mut item = Item::new();
        item.insert("n".into(), AttributeValue::N("42".into()));
        item.insert(
            "big".into(),
            AttributeValue::N("123456789012345678901234".into()),
        );
        item.insert("f".into(), AttributeValue::N("1.5".into()));
        item.insert(
            "b".into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b"hi".to_vec())),
        );
        item.insert("ok".into(), AttributeValue::Bool(true));
        assert_eq!(
            item_json(&item),
            json!({"b": {"$base64": "aGk="}, "big": "123456789012345678901234", "f": 1.5, "n": 42, "ok": true})
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(12), "12 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
