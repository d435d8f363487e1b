//! `catalog-gen`: writes a realistic product-catalog extract, as CSV, NDJSON or Parquet,
//! compressed or not.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use ferry_catalog_gen::{
    CatalogOptions, RowFormat, write_bytes, write_parquet_bytes, write_parquet_rows, write_rows,
};

/// Generate a realistic product-catalog extract (wide base64 images, quoted comments, ~25%
/// without image). The same seed always gives the same file.
#[derive(Parser)]
#[command(
    version,
    after_help = "Examples:\n  catalog-gen --rows 100 -o day1.csv\n  catalog-gen --size 1GiB -o big.csv --seed 7\n  \
                  catalog-gen --rows 100 --format ndjson --compression gzip -o day1.ndjson.gz\n  \
                  catalog-gen --rows 100 --format parquet -o day1.parquet"
)]
struct Args {
    /// How rows are written.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// How the output is compressed. `--size` counts the bytes before compression (for Parquet,
    /// the bytes of the same rows as CSV).
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Number of data rows to write.
    #[arg(long, conflicts_with = "size")]
    rows: Option<u64>,
    /// Approximate file size, e.g. 500MB, 1GiB, 64KiB.
    #[arg(long)]
    size: Option<String>,
    /// Output file; `-` for standard output.
    #[arg(short, long, default_value = "-")]
    output: PathBuf,
    #[arg(long, default_value_t = CatalogOptions::default().seed)]
    seed: u64,
    /// Share of rows without an image.
    #[arg(long, default_value_t = CatalogOptions::default().no_image_ratio)]
    no_image_ratio: f64,
    /// Share of comments with a line break inside quotes.
    #[arg(long, default_value_t = 0.0)]
    multiline_ratio: f64,
    /// Use CRLF line endings.
    #[arg(long)]
    crlf: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Ndjson,
    Parquet,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The output file, through its compressor.
enum Output {
    Plain(Box<dyn Write + Send>),
    Gzip(flate2::write::GzEncoder<Box<dyn Write + Send>>),
    Zstd(zstd::stream::write::Encoder<'static, Box<dyn Write + Send>>),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(out) => out.write(buf),
            Self::Gzip(out) => out.write(buf),
            Self::Zstd(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(out) => out.flush(),
            Self::Gzip(out) => out.flush(),
            Self::Zstd(out) => out.flush(),
        }
    }
}

impl Output {
    fn finish(self) -> std::io::Result<()> {
        match self {
            Self::Plain(mut out) => out.flush(),
            Self::Gzip(out) => out.finish()?.flush(),
            Self::Zstd(out) => out.finish()?.flush(),
        }
    }
}

fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("unknown size unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)"),
    };
    Ok((number * multiplier) as u64)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = CatalogOptions {
        seed: args.seed,
        format: match args.format {
            Format::Csv => RowFormat::Csv,
            Format::Ndjson => RowFormat::Ndjson,
            Format::Parquet => RowFormat::Parquet,
        },
        no_image_ratio: args.no_image_ratio,
        multiline_comment_ratio: args.multiline_ratio,
        crlf: args.crlf,
        ..CatalogOptions::default()
    };
    let sink: Box<dyn Write + Send> = if args.output.as_os_str() == "-" {
        Box::new(BufWriter::new(std::io::stdout()))
    } else {
        let file = File::create(&args.output)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let mut out = match args.compression {
        Compression::None => Output::Plain(sink),
        Compression::Gzip => Output::Gzip(flate2::write::GzEncoder::new(
            sink,
            flate2::Compression::default(),
        )),
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(sink, 3)?;
            // As the zstd command does: a reader can then tell a corrupted frame.
            encoder.include_checksum(true)?;
            Output::Zstd(encoder)
        }
    };
    let parquet = options.format == RowFormat::Parquet;
    let stats = match (args.rows, args.size, parquet) {
        (Some(rows), _, false) => write_rows(&mut out, options, rows)?,
        (None, Some(size), false) => write_bytes(&mut out, options, parse_size(&size)?)?,
        (Some(rows), _, true) => write_parquet_rows(&mut out, options, rows)?,
        (None, Some(size), true) => write_parquet_bytes(&mut out, options, parse_size(&size)?)?,
        (None, None, _) => bail!("give --rows N or --size SIZE"),
    };
    // The compressed stream's trailer is written here, and its errors reported, not on drop.
    out.finish()?;
    eprintln!(
        "wrote {} rows, {} bytes ({} with image, {} Samsung after 2000 without image)",
        stats.rows, stats.bytes, stats.with_image, stats.samsung_after_2000_without_image
    );
    Ok(())
}
