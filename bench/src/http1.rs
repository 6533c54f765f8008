//! The smallest HTTP/1.1 client the measurements need: write a request, read one answer.
//!
//! It keeps no state but a read buffer, so the same stream can carry the next request
//! (keep-alive). Answers are framed by `Content-Length`, by chunked transfer coding, or by the
//! end of the stream; a stream that ends without TLS `close_notify` after a complete answer is
//! not an error.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest answer body accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body, decoded from chunked coding if it was.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header field named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A GET request for `path`; with `close`, asks the server to close after answering.
pub fn get(host: &str, path: &str, close: bool) -> Vec<u8> {
    let connection = if close { "close" } else { "keep-alive" };
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n\r\n").into_bytes()
}

/// A POST request with a JSON body, keeping the connection open.
pub fn post_json(host: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reads more bytes into `buf`; `Ok(false)` at the end of the stream (a TLS stream that ends
/// without `close_notify` counts as ended).
async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Makes sure `buf` holds at least `n` bytes.
async fn need<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    while buf.len() < n {
        if !fill(stream, buf).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// Reads one answer from `stream`. `buf` carries bytes read past the previous answer and keeps
/// those read past this one.
pub async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<Response> {
    let head_len = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid("answer head too long"));
        }
        if !fill(stream, buf).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    };
    let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| invalid("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|s| s.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    buf.drain(..head_len);
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                if !fill(stream, buf).await? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            };
            let size_text = std::str::from_utf8(&buf[..line_end])
                .map_err(|_| invalid("bad chunk size"))?
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let size =
                usize::from_str_radix(&size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            if response.body.len() + size > MAX_BODY {
                return Err(invalid("answer body too long"));
            }
            buf.drain(..line_end + 2);
            if size == 0 {
                // Trailer section: lines up to an empty one.
                loop {
                    need(stream, buf, 2).await?;
                    match find(buf, b"\r\n") {
                        Some(0) => {
                            buf.drain(..2);
                            return Ok(response);
                        }
                        Some(i) => {
                            buf.drain(..i + 2);
                        }
                        None => {
                            if !fill(stream, buf).await? {
                                return Err(io::ErrorKind::UnexpectedEof.into());
                            }
                        }
                    }
                }
            }
            need(stream, buf, size + 2).await?;
            response.body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
        if len > MAX_BODY {
            return Err(invalid("answer body too long"));
        }
        need(stream, buf, len).await?;
        response.body = buf.drain(..len).collect();
        Ok(response)
    } else {
        while fill(stream, buf).await? {
            if buf.len() > MAX_BODY {
                return Err(invalid("answer body too long"));
            }
        }
        response.body = std::mem::take(buf);
        Ok(response)
    }
}

/// Writes `request` and reads its answer.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    request: &[u8],
) -> io::Result<Response> {
    stream.write_all(request).await?;
    stream.flush().await?;
    read_response(stream, buf).await
}

/// Reads and discards until the peer ends the stream (or it fails).
pub async fn drain_to_end<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut chunk = [0u8; 4096];
    while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Response, Vec<u8>) {
        let mut stream = bytes;
        let mut buf = Vec::new();
        let r = read_response(&mut stream, &mut buf).await.unwrap();
        (r, buf)
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn content_length_keeps_the_rest() {
        let (r, rest) = block(parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nokHTTP/1.1",
        ));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"ok");
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(rest, b"HTTP/1.1");
    }

    #[test]
    fn chunked() {
        let (r, rest) = block(parse(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3;x=y\r\ncde\r\n0\r\n\r\nZ",
        ));
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"abcde");
        assert_eq!(rest, b"Z");
    }

    #[test]
    fn to_end_of_stream() {
        let (r, _) = block(parse(b"HTTP/1.0 404 Not Found\r\n\r\nnothing"));
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"nothing");
    }

    #[test]
    fn truncated_is_an_error() {
        let mut stream: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok";
        let mut buf = Vec::new();
        assert!(block(read_response(&mut stream, &mut buf)).is_err());
    }
}
