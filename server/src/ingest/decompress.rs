//! Compressed sources. The reader hashes the bytes as stored; the parser reads them through a
//! streaming decoder, so a compressed file is never held whole, and memory stays flat.

use std::io::{self, Read};

use crate::contract::Compression;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// What the parser reads: `input` decompressed as `compression` says (for `auto`, as its first
/// bytes say), and which compression that was.
pub fn decoded(
    mut input: impl Read + Send + 'static,
    compression: Compression,
) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    let compression = match compression {
        Compression::Auto => {
            let mut head = [0u8; 4];
            let mut filled = 0;
            while filled < head.len() {
                match input.read(&mut head[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            let head = head[..filled].to_vec();
            let detected = detect(&head);
            let input = io::Cursor::new(head).chain(input);
            return Ok((decoder(input, detected)?, detected));
        }
        explicit => explicit,
    };
    Ok((decoder(input, compression)?, compression))
}

fn detect(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn decoder(
    input: impl Read + Send + 'static,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send>> {
    Ok(match compression {
        // Multi-member: `cat a.gz b.gz` is one valid gzip stream; a single-member decoder
        // would stop after the first and lose the rest silently.
        Compression::Gzip => Box::new(Undecodable {
            inner: flate2::read::MultiGzDecoder::new(input),
            format: "gzip",
        }),
        Compression::Zstd => Box::new(Undecodable {
            inner: zstd::stream::read::Decoder::new(input)?,
            format: "zstd",
        }),
        Compression::None | Compression::Auto => Box::new(input),
    })
}

/// Marks a decoder's failures as bad data (`InvalidData`), which the parser reports as a
/// malformed source: the file is not what its compression says. A failure of the read itself
/// is reported by the reader, which Ferry prefers over any parser error.
struct Undecodable<R> {
    inner: R,
    format: &'static str,
}

impl<R: Read> Read for Undecodable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the source is not valid {} ({e})", self.format),
            )
        })
    }
}

/// Decoded chunks in flight between the decompressing thread and the parser.
const DECODED_IN_FLIGHT: usize = 4;
const DECODED_CHUNK_BYTES: usize = 1 << 20;

/// Runs `decoder` on a thread of its own, so decompression and parsing overlap instead of taking
/// turns on one core. The parser reads what the thread decoded; a decoder error reaches it with
/// its kind (`InvalidData` for a corrupt stream) once the bytes before it are read. The thread
/// ends when the input does or when the parser stops reading.
pub fn on_own_thread(mut decoder: Box<dyn Read + Send>) -> io::Result<impl Read + Send> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Decoded>(DECODED_IN_FLIGHT);
    std::thread::Builder::new()
        .name("ferry-decompress".into())
        .spawn(move || {
            loop {
                let mut chunk = vec![0u8; DECODED_CHUNK_BYTES];
                let mut filled = 0;
                let outcome = loop {
                    match decoder.read(&mut chunk[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == chunk.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                let done = filled < chunk.len() || outcome.is_err();
                chunk.truncate(filled);
                if !chunk.is_empty() && tx.send(Decoded::Bytes(chunk)).is_err() {
                    return;
                }
                if let Err(e) = outcome {
                    let _ = tx.send(Decoded::Failed(e));
                    return;
                }
                if done {
                    let _ = tx.send(Decoded::End);
                    return;
                }
            }
        })?;
    Ok(DecodedReader {
        rx,
        current: Vec::new(),
        at: 0,
        ended: false,
    })
}

/// What the decompressing thread hands over. The end is said, not inferred from a closed
/// channel: a thread that stopped any other way must not look like the end of the file.
enum Decoded {
    Bytes(Vec<u8>),
    Failed(io::Error),
    End,
}

/// The parser's side of `on_own_thread`.
struct DecodedReader {
    rx: std::sync::mpsc::Receiver<Decoded>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

impl Read for DecodedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Decoded::Bytes(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Ok(Decoded::Failed(e)) => return Err(e),
                Ok(Decoded::End) => self.ended = true,
                Err(_) => {
                    return Err(io::Error::other(
                        "the decompressing thread stopped before the end of the source",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const TEXT: &[u8] = b"brand,year\nHP,1999\nAcer,2001\n";

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn read_all(compressed: Vec<u8>, compression: Compression) -> (Vec<u8>, Compression) {
        let (mut reader, used) = decoded(io::Cursor::new(compressed), compression).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        (out, used)
    }

    #[test]
    fn auto_tells_gzip_zstd_and_plain_text_apart() {
        assert_eq!(
            read_all(gzip(TEXT), Compression::Auto),
            (TEXT.to_vec(), Compression::Gzip)
        );
        let zstd = zstd::stream::encode_all(TEXT, 3).unwrap();
        assert_eq!(
            read_all(zstd, Compression::Auto),
            (TEXT.to_vec(), Compression::Zstd)
        );
        assert_eq!(
            read_all(TEXT.to_vec(), Compression::Auto),
            (TEXT.to_vec(), Compression::None)
        );
        // Shorter than any magic number: read as it is.
        assert_eq!(read_all(b"a\n".to_vec(), Compression::Auto).0, b"a\n");
    }

    #[test]
    fn concatenated_gzip_members_are_read_to_the_end() {
        let mut two = gzip(b"brand,year\nHP,1999\n");
        two.extend(gzip(b"Acer,2001\n"));
        assert_eq!(read_all(two, Compression::Gzip).0, TEXT);
    }

    #[test]
    fn a_decoder_on_its_own_thread_gives_the_same_bytes_and_errors() {
        let big: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let (decoder, _) = decoded(io::Cursor::new(gzip(&big)), Compression::Auto).unwrap();
        let mut out = Vec::new();
        on_own_thread(decoder)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == big, "the bytes arrive whole and in order");
        let mut cut = gzip(&big);
        cut.truncate(cut.len() / 2);
        let (decoder, _) = decoded(io::Cursor::new(cut), Compression::Auto).unwrap();
        let mut out = Vec::new();
        let err = on_own_thread(decoder)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(!out.is_empty(), "what decoded before the cut was read");
    }

    #[test]
    fn a_declared_compression_is_not_second_guessed() {
        // Plain text declared as gzip is an error, not silently read as text.
        let (mut reader, _) = decoded(io::Cursor::new(TEXT.to_vec()), Compression::Gzip).unwrap();
        assert!(reader.read_to_end(&mut Vec::new()).is_err());
    }
}
