//! A small but real SMTP server that runs inside the test process.
//!
//! It speaks enough ESMTP for lettre (EHLO/HELO, optional AUTH PLAIN/LOGIN that
//! accepts any credentials, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps every
//! delivered message in memory and lets tests wait for a message to arrive.
//! Several transactions per connection (lettre's pooling) and concurrent
//! connections are supported.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Largest message accepted (bytes); larger ones get `552`.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// Longest command line accepted.
const MAX_LINE: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// Envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// Envelope recipients (`RCPT TO`), without angle brackets.
    pub to: Vec<String>,
    /// The message as received (CRLF line endings, dot-stuffing undone).
    pub raw: String,
}

struct Shared {
    mails: Mutex<Vec<ReceivedMail>>,
    notify: Notify,
    /// How long the server takes to accept each message (a slow relay).
    delay: Duration,
}

pub struct SmtpServer {
    port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SmtpServer {
    /// Start on an ephemeral port of 127.0.0.1.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("smtp test server: bind 127.0.0.1:0");
        Self::from_listener(listener)
    }

    /// Start on a given port of 127.0.0.1, retrying for up to 2 s while the
    /// address is still in use (e.g. a previous server on it is shutting down).
    pub async fn start_on(port: u16) -> SmtpServer {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match bind_reuse(port) {
                Ok(listener) => return Self::from_listener(listener),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("smtp test server: cannot bind 127.0.0.1:{port}: {e}"),
            }
        }
    }

    /// Start on an ephemeral port; each message is answered only after `delay`.
    pub async fn start_slow(delay: Duration) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("smtp test server: bind 127.0.0.1:0");
        Self::with_delay(listener, delay)
    }

    fn from_listener(listener: TcpListener) -> SmtpServer {
        Self::with_delay(listener, Duration::ZERO)
    }

    fn with_delay(listener: TcpListener, delay: Duration) -> SmtpServer {
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            notify: Notify::new(),
            delay,
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        SmtpServer { port, shared, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// Messages received so far whose envelope recipients include `to`
    /// (case-insensitive).
    pub fn messages_to(&self, to: &str) -> Vec<ReceivedMail> {
        self.messages()
            .into_iter()
            .filter(|m| m.is_for(to))
            .collect()
    }

    /// Wait until a message to `to` (case-insensitive) whose subject contains
    /// `subject_contains` (case-insensitive) has arrived; returns the first such
    /// message. Panics after `timeout`, listing what did arrive.
    pub async fn wait_for(
        &self,
        to: &str,
        subject_contains: &str,
        timeout: Duration,
    ) -> ReceivedMail {
        let needle = subject_contains.to_lowercase();
        let find = || {
            self.messages()
                .into_iter()
                .find(|m| m.is_for(to) && m.subject().to_lowercase().contains(&needle))
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before checking, so a message delivered between
            // the check and the wait is not missed.
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = find() {
                return m;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                if let Some(m) = find() {
                    return m;
                }
                let got: Vec<String> = self
                    .messages()
                    .iter()
                    .map(|m| format!("  to={:?} subject={:?}", m.to, m.subject()))
                    .collect();
                panic!(
                    "smtp test server (port {}): no message to {to:?} with subject containing \
                     {subject_contains:?} within {timeout:?}; received {}:\n{}",
                    self.port,
                    got.len(),
                    if got.is_empty() {
                        "  (nothing)".to_string()
                    } else {
                        got.join("\n")
                    }
                );
            }
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // Aborting the accept task drops the listener and the JoinSet that owns
        // the connection tasks, so open connections are closed too.
        self.task.abort();
    }
}

fn bind_reuse(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(128)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(handle_connection(stream, shared.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next() => {}
        }
    }
}

/// Read one line (up to and including `\n`). `Ok(None)` on EOF.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<()>> {
    buf.clear();
    let n = reader.read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(()))
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The address inside `<...>` after `MAIL FROM:` / `RCPT TO:` (parameters ignored).
fn parse_path(arg: &str) -> Option<String> {
    let arg = arg.trim();
    if let Some(start) = arg.find('<') {
        let end = arg[start..].find('>')? + start;
        Some(arg[start + 1..end].trim().to_string())
    } else {
        // Lenient: bare address, up to the first space.
        let addr = arg.split_whitespace().next()?;
        Some(addr.to_string())
    }
}

async fn handle_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = session(stream, shared).await;
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read_half, mut w) = stream.into_split();
    let mut r = BufReader::new(read_half);
    let mut line = Vec::new();

    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();

    w.write_all(b"220 localhost ESMTP test\r\n").await?;
    loop {
        if read_line(&mut r, &mut line).await?.is_none() {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            w.write_all(b"500 Line too long\r\n").await?;
            continue;
        }
        let text = String::from_utf8_lossy(strip_eol(&line)).into_owned();
        let (verb, arg) = match text.find(' ') {
            Some(i) => (text[..i].to_ascii_uppercase(), text[i + 1..].to_string()),
            None => (text.to_ascii_uppercase(), String::new()),
        };
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => {
                from = None;
                rcpts.clear();
                b"250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n"
            }
            "HELO" => {
                from = None;
                rcpts.clear();
                b"250 localhost\r\n"
            }
            "AUTH" => {
                // Any credentials are accepted; nothing is checked or stored.
                let mut parts = arg.split_whitespace();
                match parts.next().map(|s| s.to_ascii_uppercase()).as_deref() {
                    Some("PLAIN") => {
                        if parts.next().is_none() {
                            w.write_all(b"334 \r\n").await?;
                            if read_line(&mut r, &mut line).await?.is_none() {
                                return Ok(());
                            }
                        }
                        b"235 2.7.0 Authentication successful\r\n"
                    }
                    Some("LOGIN") => {
                        if parts.next().is_none() {
                            // "Username:"
                            w.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                            if read_line(&mut r, &mut line).await?.is_none() {
                                return Ok(());
                            }
                        }
                        // "Password:"
                        w.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        if read_line(&mut r, &mut line).await?.is_none() {
                            return Ok(());
                        }
                        b"235 2.7.0 Authentication successful\r\n"
                    }
                    _ => b"504 Unrecognized authentication type\r\n",
                }
            }
            "MAIL" => {
                let upper = arg.to_ascii_uppercase();
                if !upper.starts_with("FROM:") {
                    b"501 Syntax: MAIL FROM:<address>\r\n"
                } else if from.is_some() {
                    b"503 Nested MAIL command\r\n"
                } else {
                    match parse_path(&arg[5..]) {
                        Some(addr) => {
                            from = Some(addr);
                            rcpts.clear();
                            b"250 OK\r\n"
                        }
                        None => b"501 Syntax: MAIL FROM:<address>\r\n",
                    }
                }
            }
            "RCPT" => {
                let upper = arg.to_ascii_uppercase();
                if !upper.starts_with("TO:") {
                    b"501 Syntax: RCPT TO:<address>\r\n"
                } else if from.is_none() {
                    b"503 Need MAIL before RCPT\r\n"
                } else {
                    match parse_path(&arg[3..]) {
                        Some(addr) if !addr.is_empty() => {
                            rcpts.push(addr);
                            b"250 OK\r\n"
                        }
                        _ => b"501 Syntax: RCPT TO:<address>\r\n",
                    }
                }
            }
            "DATA" => {
                if from.is_none() || rcpts.is_empty() {
                    b"503 Need MAIL and RCPT before DATA\r\n"
                } else {
                    w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let mut body: Vec<u8> = Vec::new();
                    let mut too_big = false;
                    loop {
                        if read_line(&mut r, &mut line).await?.is_none() {
                            return Ok(()); // connection lost mid-message: discard
                        }
                        let content = strip_eol(&line);
                        if content == b"." {
                            break;
                        }
                        // Undo dot-stuffing.
                        let content = content.strip_prefix(b".").unwrap_or(content);
                        if body.len() + content.len() + 2 > MAX_MESSAGE {
                            too_big = true;
                            continue;
                        }
                        body.extend_from_slice(content);
                        body.extend_from_slice(b"\r\n");
                    }
                    let mail = ReceivedMail {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut rcpts),
                        raw: String::from_utf8_lossy(&body).into_owned(),
                    };
                    if !shared.delay.is_zero() {
                        tokio::time::sleep(shared.delay).await;
                    }
                    if too_big {
                        b"552 Message too large\r\n"
                    } else {
                        shared.mails.lock().unwrap().push(mail);
                        shared.notify.notify_waiters();
                        b"250 OK: queued\r\n"
                    }
                }
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                w.write_all(b"221 Bye\r\n").await?;
                w.shutdown().await.ok();
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        w.write_all(reply).await?;
    }
}

// ---------------------------------------------------------------------------
// Message decoding (MIME, quoted-printable, base64, RFC 2047 encoded words)
// ---------------------------------------------------------------------------

impl ReceivedMail {
    fn is_for(&self, to: &str) -> bool {
        self.to.iter().any(|r| r.eq_ignore_ascii_case(to.trim()))
    }

    /// The top-level headers (unfolded, encoded words decoded), a blank line,
    /// then the decoded text of every leaf part (quoted-printable and base64
    /// undone), in order. Line endings are normalised to `\n`.
    pub fn decoded(&self) -> String {
        let (head, _) = split_head_body(&self.raw);
        let mut out = String::new();
        for (name, value) in parse_headers(head) {
            out.push_str(&name);
            out.push_str(": ");
            out.push_str(&decode_words(&value));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.decoded_body());
        out
    }

    /// The decoded text of all leaf parts, without headers.
    pub fn decoded_body(&self) -> String {
        let mut out = String::new();
        decode_entity(&self.raw, &mut out, 0);
        out
    }

    /// A top-level header's value (first occurrence, case-insensitive name),
    /// unfolded and with encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_head_body(&self.raw);
        parse_headers(head)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_words(&v))
    }

    /// The decoded Subject header ("" if absent).
    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The first `token=<[A-Za-z0-9_-]+>` in the decoded body, preferring one
    /// in a URL query (`?token=`, `&token=`, `&amp;token=`).
    pub fn token(&self) -> Option<String> {
        let body = self.decoded_body();
        let candidates = || {
            body.match_indices("token=").filter_map(|(i, m)| {
                let value: String = body[i + m.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                let in_query = matches!(body[..i].chars().last(), Some('?' | '&' | ';'));
                (!value.is_empty()).then_some((in_query, value))
            })
        };
        candidates()
            .find(|(in_query, _)| *in_query)
            .or_else(|| candidates().next())
            .map(|(_, value)| value)
    }
}

/// Split an entity into (header block, body) at the first empty line.
fn split_head_body(entity: &str) -> (&str, &str) {
    let mut pos = 0;
    for line in entity.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']).is_empty() {
            return (&entity[..pos], &entity[pos + line.len()..]);
        }
        pos += line.len();
    }
    (entity, "")
}

/// Unfold and split a header block into (name, raw value) pairs.
fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A parameter of a structured header such as `boundary` of Content-Type.
fn header_param(value: &str, param: &str) -> Option<String> {
    for piece in value.split(';').skip(1) {
        let piece = piece.trim();
        if let Some((k, v)) = piece.split_once('=') {
            if k.trim().eq_ignore_ascii_case(param) {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                return Some(v.to_string());
            }
        }
    }
    None
}

/// Append the decoded text of an entity (recursing into multiparts) to `out`.
fn decode_entity(entity: &str, out: &mut String, depth: usize) {
    let (head, body) = split_head_body(entity);
    let headers = parse_headers(head);
    let ctype = header_value(&headers, "Content-Type").unwrap_or("text/plain");
    let mime = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();

    if mime.starts_with("multipart/") && depth < 16 {
        if let Some(boundary) = header_param(ctype, "boundary") {
            let open = format!("--{boundary}");
            let close = format!("--{boundary}--");
            let mut current: Option<Vec<&str>> = None;
            for line in body.lines() {
                let trimmed = line.trim_end();
                if trimmed == close {
                    if let Some(part) = current.take() {
                        decode_entity(&part.join("\r\n"), out, depth + 1);
                    }
                    break;
                } else if trimmed == open {
                    if let Some(part) = current.take() {
                        decode_entity(&part.join("\r\n"), out, depth + 1);
                    }
                    current = Some(Vec::new());
                } else if let Some(part) = current.as_mut() {
                    part.push(line);
                }
            }
            if let Some(part) = current.take() {
                decode_entity(&part.join("\r\n"), out, depth + 1);
            }
            return;
        }
    }

    let cte = header_value(&headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let bytes = match cte.as_str() {
        "quoted-printable" => qp_decode(body),
        "base64" => base64_decode(body),
        _ => body.as_bytes().to_vec(),
    };
    let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
    out.push_str(&text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Quoted-printable body decoding (RFC 2045 §6.7): `=XX` escapes and soft
/// line breaks (`=` at end of line).
fn qp_decode(body: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.lines() {
        // Trailing whitespace is not part of the encoded data.
        let line = line.trim_end_matches([' ', '\t']).as_bytes();
        let (line, soft) = match line.strip_suffix(b"=") {
            Some(l) => (l, true),
            None => (line, false),
        };
        out.extend(qp_bytes(line, false));
        if !soft {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Decode `=XX` escapes (and `_` as space in RFC 2047 Q encoding).
fn qp_bytes(s: &[u8], underscore_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'=' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex_val),
                s.get(i + 2).copied().and_then(hex_val),
            ) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
            out.push(b);
        } else if b == b'_' && underscore_is_space {
            out.push(b' ');
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

/// Base64 decoding (standard or URL-safe alphabet); whitespace is skipped and
/// decoding stops at padding.
fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Decode RFC 2047 encoded words (`=?charset?B|Q?text?=`), assuming UTF-8
/// (or ASCII) charsets. Whitespace between adjacent encoded words is dropped.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let Some((decoded, consumed)) = parse_encoded_word(&rest[start..]) else {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            last_was_word = false;
            continue;
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&decoded);
        rest = &rest[start + consumed..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

/// Parse one encoded word at the start of `s`; returns (text, bytes consumed).
fn parse_encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let q1 = inner.find('?')?; // charset ignored: UTF-8 assumed
    let after_charset = &inner[q1 + 1..];
    let q2 = after_charset.find('?')?;
    let encoding = &after_charset[..q2];
    let text_start = &after_charset[q2 + 1..];
    let end = text_start.find("?=")?;
    let text = &text_start[..end];
    if text.contains(' ') {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => base64_decode(text),
        "Q" | "q" => qp_bytes(text.as_bytes(), true),
        _ => return None,
    };
    let consumed = 2 + q1 + 1 + q2 + 1 + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(raw: &str) -> ReceivedMail {
        ReceivedMail {
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            raw: raw.replace('\n', "\r\n"),
        }
    }

    #[test]
    fn decodes_multipart_qp_and_base64() {
        // "Hi, https://x/verify?token=abc_DEF-123 thanks" in base64:
        let b64 = "SGksIGh0dHBzOi8veC92ZXJpZnk/dG9rZW49YWJjX0RFRi0xMjMgdGhhbmtz";
        let raw = format!(
            "From: a@example.com\nTo: b@example.com\nSubject: =?utf-8?b?VsOpcmlmeQ==?=\n =?utf-8?q?_your_email?=\n\
             MIME-Version: 1.0\nContent-Type: multipart/alternative;\n boundary=\"XyZ\"\n\n\
             --XyZ\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
             Click https://x/verify?tok=\nen=3Dqq_1-2 now =C3=A9\n\
             --XyZ\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n{b64}\n--XyZ--\n"
        );
        let m = mail(&raw);
        assert_eq!(m.subject(), "Vérify your email");
        let body = m.decoded_body();
        assert!(
            body.contains("Click https://x/verify?token=qq_1-2 now é"),
            "{body}"
        );
        assert!(
            body.contains("Hi, https://x/verify?token=abc_DEF-123 thanks"),
            "{body}"
        );
        assert_eq!(m.token().as_deref(), Some("qq_1-2"));
        assert!(m.decoded().starts_with("From: a@example.com\n"));
    }

    #[test]
    fn plain_seven_bit_message() {
        let m = mail("Subject: Reset your password\nContent-Type: text/plain\n\nGo to http://h/r?a=1&token=Zz9 ok\n");
        assert_eq!(m.subject(), "Reset your password");
        assert_eq!(m.token().as_deref(), Some("Zz9"));
    }
}
