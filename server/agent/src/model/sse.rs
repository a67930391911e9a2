//! An incremental parser for Server-Sent Events, the framing both model APIs
//! stream their responses in.
//!
//! Bytes arrive in arbitrary chunks from the network: a line, an event or even
//! a UTF-8 character may be split across two chunks. [`SseParser::push`]
//! buffers the unfinished tail and returns every event completed by the chunk.
//! It follows the WHATWG event-stream rules that matter for model APIs:
//! events end at a blank line; `event:` names the event, `data:` lines are
//! joined with `\n`, `id:` is kept; lines starting with `:` are comments; a
//! single space after the colon is dropped; lines end in `\n`, `\r\n` or `\r`;
//! a leading byte-order mark is skipped. An event without data lines is not
//! dispatched, and an event cut off by the end of the stream is dropped
//! (see [`SseParser::finish`]).

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, or `message` when the event named none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` field of the event, if any.
    pub id: Option<String>,
}

/// Incremental event-stream parser; feed it chunks in arrival order.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    pending: Vec<u8>,
    /// The previous chunk ended in `\r`, so a `\n` at the start of the next
    /// chunk belongs to the same line ending.
    skip_leading_lf: bool,
    at_stream_start: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

/// The stream contained bytes that are not UTF-8 inside an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event stream line is not valid UTF-8: {line_prefix:?}")]
pub struct SseError {
    /// The start of the offending line, lossily decoded, for the error message.
    pub line_prefix: String,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser {
            at_stream_start: true,
            ..SseParser::default()
        }
    }

    /// Consumes `chunk` and returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        let mut rest = chunk;
        if self.skip_leading_lf && !rest.is_empty() {
            self.skip_leading_lf = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.pending.extend_from_slice(&rest[..end]);
            let terminator = rest[end];
            rest = &rest[end + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_leading_lf = true,
                }
            }
            let line = std::mem::take(&mut self.pending);
            if let Some(event) = self.line(&line)? {
                events.push(event);
            }
        }
        self.pending.extend_from_slice(rest);
        Ok(events)
    }

    /// Ends the stream. An event that was not terminated by a blank line is
    /// incomplete and, as the event-stream rules say, is not dispatched;
    /// returns whether such a partial event (or line) was dropped, so callers
    /// can tell a cut-off stream from a clean end.
    pub fn finish(&mut self) -> bool {
        let dropped = !self.pending.is_empty() || self.data.is_some() || self.event.is_some();
        self.pending.clear();
        self.reset_event();
        dropped
    }

    fn line(&mut self, raw: &[u8]) -> Result<Option<SseEvent>, SseError> {
        let mut raw = raw;
        if self.at_stream_start {
            self.at_stream_start = false;
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        if raw.is_empty() {
            return Ok(self.dispatch());
        }
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(_) => {
                let prefix: String = String::from_utf8_lossy(raw).chars().take(40).collect();
                self.reset_event();
                return Err(SseError {
                    line_prefix: prefix,
                });
            }
        };
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            // An id containing NUL is ignored by the spec.
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            // `retry:` and unknown fields do not concern a one-shot client.
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let id = self.id.take();
        let data = self.data.take()?;
        Some(SseEvent {
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".to_owned()),
            data,
            id,
        })
    }

    fn reset_event(&mut self) {
        self.event = None;
        self.data = None;
        self.id = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(events: &[SseEvent]) -> String {
        events
            .iter()
            .map(|e| match &e.id {
                Some(id) => format!("{}#{}={:?}", e.event, id, e.data),
                None => format!("{}={:?}", e.event, e.data),
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// Parses `input` whole, then again split at every byte position and
    /// one byte at a time; every split must give the same events.
    fn check(input: &str, expect: &str) {
        let bytes = input.as_bytes();
        let whole = {
            let mut parser = SseParser::new();
            parser.push(bytes).unwrap()
        };
        assert_eq!(render(&whole), expect, "input {input:?}");
        for split in 0..=bytes.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&bytes[..split]).unwrap();
            events.extend(parser.push(&bytes[split..]).unwrap());
            assert_eq!(render(&events), expect, "input {input:?} split at {split}");
        }
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for byte in bytes {
            events.extend(parser.push(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(render(&events), expect, "input {input:?} byte by byte");
    }

    #[test]
    fn events() {
        check("data: hello\n\n", r#"message="hello""#);
        check("event: ping\ndata: {}\n\n", r#"ping="{}""#);
        check("data: a\ndata: b\n\n", r#"message="a\nb""#);
        check("data:no-space\n\n", r#"message="no-space""#);
        check("data:  two spaces\n\n", r#"message=" two spaces""#);
        check("data\n\n", r#"message="""#);
        check("data:\n\n", r#"message="""#);
        check(": comment\ndata: x\n\n", r#"message="x""#);
        check(": just a comment\n\n", "");
        check("event: lonely\n\n", "");
        check("id: 7\ndata: x\n\n", r#"message#7="x""#);
        check("retry: 100\nfoo: bar\ndata: x\n\n", r#"message="x""#);
        check("event:\ndata: x\n\n", r#"message="x""#);
        check(
            "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n",
            r#"a="1" | b="2""#,
        );
        check("data: 1\n\n\n\ndata: 2\n\n", r#"message="1" | message="2""#);
        check("data: incomplete\n", "");
        check(
            "data: {\"k\": \"a: b\"}\n\n",
            r#"message="{\"k\": \"a: b\"}""#,
        );
    }

    #[test]
    fn line_endings() {
        check("data: a\r\n\r\n", r#"message="a""#);
        check("data: a\r\rdata: b\r\r", r#"message="a" | message="b""#);
        check("event: e\r\ndata: a\r\ndata: b\r\n\r\n", r#"e="a\nb""#);
        check("data: a\n\r\ndata: b\r\n\n", r#"message="a" | message="b""#);
    }

    #[test]
    fn utf8_and_bom() {
        check("data: héllo → 世界 🦀\n\n", r#"message="héllo → 世界 🦀""#);
        check("\u{feff}data: bom\n\n", r#"message="bom""#);
        // Only the stream's first line may carry a BOM; later it is part of
        // an unknown field name.
        check("data: a\n\n\u{feff}data: b\n\n", r#"message="a""#);
    }

    #[test]
    fn anthropic_stream_shape() {
        check(
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
             event: ping\ndata: {\"type\": \"ping\"}\n\n\
             event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            r#"message_start="{\"type\":\"message_start\"}" | ping="{\"type\": \"ping\"}" | message_stop="{\"type\":\"message_stop\"}""#,
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut parser = SseParser::new();
        let err = parser.push(b"data: \xff\xfe\n\n").unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn finish_reports_a_cut_off_event() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: a\n").unwrap().is_empty());
        assert!(parser.finish());
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: a\n\n").unwrap().len(), 1);
        assert!(!parser.finish());
    }
}
