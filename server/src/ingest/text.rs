//! Text sources as the parser wants them: UTF-8, with the lines before the data skipped.
//!
//! Transcoding streams: a Latin-1 or Windows-1252 file is never held whole. For UTF-8 and
//! Windows-1252, a byte-order mark at the start is dropped (spreadsheet exports add one, and it
//! would otherwise become part of the first header name) and decides the encoding, as
//! encoding_rs_io sniffs it. In Latin-1 those bytes are characters like any other.

use std::io::{self, Read};

use encoding_rs_io::DecodeReaderBytesBuilder;

use crate::contract::TextEncoding;

/// `input` as UTF-8 bytes. For UTF-8 the bytes pass through unchanged (fields are checked one by
/// one, so a bad byte is a row error with its line, not a failed publish).
pub fn utf8<'r>(input: impl Read + 'r, encoding: TextEncoding) -> Box<dyn Read + 'r> {
    let decoder = || {
        let mut builder = DecodeReaderBytesBuilder::new();
        builder.bom_sniffing(true).strip_bom(true);
        builder
    };
    match encoding {
        TextEncoding::Utf8 => Box::new(decoder().utf8_passthru(true).build(input)),
        TextEncoding::Windows1252 => Box::new(
            decoder()
                .encoding(Some(encoding_rs::WINDOWS_1252))
                .build(input),
        ),
        // encoding_rs's "latin1" label is Windows-1252, as the web defines it; ISO-8859-1 proper
        // maps every byte to the code point of its value, which `mem` converts exactly.
        TextEncoding::Latin1 => Box::new(Latin1 {
            inner: input,
            raw: vec![0; 64 << 10],
            decoded: Vec::new(),
            at: 0,
        }),
    }
}

struct Latin1<R> {
    inner: R,
    raw: Vec<u8>,
    decoded: Vec<u8>,
    at: usize,
}

impl<R: Read> Read for Latin1<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.decoded.len() {
            let n = self.inner.read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            // A Latin-1 byte is at most two UTF-8 bytes.
            self.decoded.resize(n * 2, 0);
            let written =
                encoding_rs::mem::convert_latin1_to_utf8(&self.raw[..n], &mut self.decoded);
            self.decoded.truncate(written);
            self.at = 0;
        }
        let n = buf.len().min(self.decoded.len() - self.at);
        buf[..n].copy_from_slice(&self.decoded[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Drops the first `lines` lines of `inner`, reading them in place: a skipped line of any length
/// costs no memory.
pub struct SkipLines<R> {
    inner: R,
    remaining: u64,
}

impl<R> SkipLines<R> {
    pub fn new(inner: R, lines: u64) -> Self {
        Self {
            inner,
            remaining: lines,
        }
    }
}

impl<R: Read> Read for SkipLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.remaining > 0 {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let mut start = 0;
            while self.remaining > 0 {
                match buf[start..n].iter().position(|b| *b == b'\n') {
                    Some(at) => {
                        start += at + 1;
                        self.remaining -= 1;
                    }
                    None => {
                        start = n;
                        break;
                    }
                }
            }
            if self.remaining == 0 && start < n {
                buf.copy_within(start..n, 0);
                return Ok(n - start);
            }
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut reader: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn latin1_maps_every_byte_to_its_code_point() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        let text = String::from_utf8(read_all(utf8(
            std::io::Cursor::new(bytes),
            TextEncoding::Latin1,
        )))
        .unwrap();
        let expected: String = (0u8..=255).map(char::from).collect();
        assert_eq!(text, expected);
    }

    #[test]
    fn windows_1252_has_the_euro_where_latin1_has_a_control() {
        let bytes = b"caf\xe9 \x80 5".to_vec();
        let cp1252 = read_all(utf8(
            std::io::Cursor::new(bytes.clone()),
            TextEncoding::Windows1252,
        ));
        assert_eq!(String::from_utf8(cp1252).unwrap(), "café € 5");
        let latin1 = read_all(utf8(std::io::Cursor::new(bytes), TextEncoding::Latin1));
        assert_eq!(String::from_utf8(latin1).unwrap(), "café \u{80} 5");
    }

    #[test]
    fn a_utf8_byte_order_mark_is_dropped_and_bad_bytes_pass_through() {
        let bytes = b"\xef\xbb\xbfbrand,year\nHP,\xff\n".to_vec();
        let out = read_all(utf8(std::io::Cursor::new(bytes), TextEncoding::Utf8));
        assert_eq!(out, b"brand,year\nHP,\xff\n");
    }

    #[test]
    fn skipped_lines_are_gone_whatever_the_read_sizes() {
        let text = [
            b"title line\n# a long comment ".as_slice(),
            &b"x".repeat(100_000),
            b"\nbrand\nHP\n",
        ]
        .concat();
        for chunk in [1, 7, 4096] {
            let reader = SkipLines::new(
                Chunked {
                    inner: std::io::Cursor::new(text.clone()),
                    size: chunk,
                },
                2,
            );
            assert_eq!(read_all(reader), b"brand\nHP\n", "chunk {chunk}");
        }
        let reader = SkipLines::new(std::io::Cursor::new(b"only\n".to_vec()), 3);
        assert_eq!(read_all(reader), b"");
    }

    /// Hands out at most `size` bytes a read, as a network stream may.
    struct Chunked<R> {
        inner: R,
        size: usize,
    }

    impl<R: Read> Read for Chunked<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let len = buf.len().min(self.size);
            self.inner.read(&mut buf[..len])
        }
    }
}
