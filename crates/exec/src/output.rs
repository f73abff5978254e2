//! Output handling: splitting pipe bytes into lines, streaming them, keeping a capped copy.

use std::time::SystemTime;

use tokio::sync::mpsc;

/// Lines longer than this many bytes are delivered in pieces of at most this size (cut on a
/// UTF-8 character boundary where possible), so a child printing without newlines cannot make
/// us buffer unbounded memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

/// One line of output, as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// The pipe it came from.
    pub stream: Stream,
    /// When it was read (when its newline arrived, or when the pipe closed for a last partial
    /// line).
    pub at: SystemTime,
    /// Lossy UTF-8, without the trailing `\n`. A line longer than [`MAX_LINE_BYTES`] arrives as
    /// several `OutputLine`s.
    pub line: String,
}

/// Splits a byte stream into lines of at most [`MAX_LINE_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(line, ended_by_newline)` for each complete line or piece.
    pub(crate) fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(Vec<u8>, bool)) {
        while let Some(&first) = data.first() {
            if self.pending.len() >= MAX_LINE_BYTES {
                if first == b'\n' {
                    emit(std::mem::take(&mut self.pending), true);
                    data = &data[1..];
                } else {
                    let cut = utf8_cut(&self.pending);
                    let rest = self.pending.split_off(cut);
                    emit(std::mem::replace(&mut self.pending, rest), false);
                }
                continue;
            }
            let room = MAX_LINE_BYTES - self.pending.len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&window[..i]);
                    emit(std::mem::take(&mut self.pending), true);
                    data = &data[i + 1..];
                }
                None => {
                    self.pending.extend_from_slice(window);
                    data = &data[window.len()..];
                }
            }
        }
    }

    /// End of stream: a last line without newline is still delivered.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(Vec<u8>, bool)) {
        if !self.pending.is_empty() {
            emit(std::mem::take(&mut self.pending), false);
        }
    }
}

/// Where to cut a full buffer so that a multi-byte character at its end is not split: the
/// start of a trailing incomplete UTF-8 sequence, else the whole length.
fn utf8_cut(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let at = len - back;
        let byte = bytes[at];
        if byte & 0xC0 != 0x80 {
            let needed = match byte {
                0xF0..=0xFF => 4,
                0xE0..=0xEF => 3,
                0xC0..=0xDF => 2,
                _ => 1,
            };
            return if needed > back && at > 0 { at } else { len };
        }
    }
    len
}

/// Lossy UTF-8 without copying when the bytes are valid.
pub(crate) fn lossy(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

/// Receives the lines of both streams: keeps the first `cap` bytes of combined output and
/// forwards every line to the optional channel without ever waiting on it.
#[derive(Debug)]
pub(crate) struct Collector {
    cap: usize,
    full: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) truncated_bytes: u64,
    lines: Option<mpsc::Sender<OutputLine>>,
    pub(crate) dropped_lines: u64,
    /// Called once, just before the first line goes to `lines`.
    first_line: Option<FirstLine>,
}

/// Called once, on the thread watching a run, just before its first output line is sent: for
/// a caller that starts whatever reads the lines only when there are some.
pub struct FirstLine(pub Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for FirstLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FirstLine")
    }
}

impl Collector {
    pub(crate) fn new(cap: usize, lines: Option<mpsc::Sender<OutputLine>>) -> Self {
        Self {
            cap,
            full: false,
            stdout: String::new(),
            stderr: String::new(),
            truncated_bytes: 0,
            lines,
            dropped_lines: 0,
            first_line: None,
        }
    }

    pub(crate) fn on_first_line(mut self, first_line: Option<FirstLine>) -> Self {
        self.first_line = first_line;
        self
    }

    /// One line (or piece of a long line) from `stream`.
    pub(crate) fn line(&mut self, stream: Stream, bytes: Vec<u8>, newline: bool) {
        let text = lossy(bytes);
        self.keep(stream, &text, newline);
        if let Some(tx) = &self.lines {
            if let Some(FirstLine(first)) = self.first_line.take() {
                first();
            }
            let line = OutputLine {
                stream,
                at: SystemTime::now(),
                line: text,
            };
            match tx.try_send(line) {
                Ok(()) => {}
                // Full: a slow consumer must never slow the child down. Closed: nobody
                // listens any more. Either way the line is dropped from the stream (it is
                // still in the kept output if it fits the cap).
                Err(mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_)) => {
                    self.dropped_lines += 1;
                }
            }
        }
    }

    fn keep(&mut self, stream: Stream, text: &str, newline: bool) {
        let size = text.len() + usize::from(newline);
        if self.full {
            self.truncated_bytes += size as u64;
            return;
        }
        let used = self.stdout.len() + self.stderr.len();
        let room = self.cap.saturating_sub(used);
        let kept = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        if size <= room {
            kept.push_str(text);
            if newline {
                kept.push('\n');
            }
            return;
        }
        // The cap is reached inside this line: keep what fits (on a character boundary) and
        // nothing after it, so the kept output is a prefix of what was produced.
        let mut cut = room.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        kept.push_str(&text[..cut]);
        self.truncated_bytes += (size - cut) as u64;
        self.full = true;
    }

    /// The kept output, with the truncation marker appended to stdout if anything was dropped.
    pub(crate) fn into_parts(self) -> (String, String, u64, u64) {
        let Self {
            mut stdout,
            stderr,
            truncated_bytes,
            dropped_lines,
            ..
        } = self;
        if truncated_bytes > 0 {
            if !stdout.is_empty() && !stdout.ends_with('\n') {
                stdout.push('\n');
            }
            stdout.push_str(&format!(
                "[output truncated: {truncated_bytes} bytes dropped]\n"
            ));
        }
        (stdout, stderr, truncated_bytes, dropped_lines)
    }
}
