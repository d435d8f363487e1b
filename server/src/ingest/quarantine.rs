//! Rejected rows that a contract tolerates are kept, never silently dropped: each goes to a CSV
//! file beside the warehouse with its line, column, reason and raw fields.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::{Quarantine, RejectedRecord};
use crate::error::FerryError;

pub struct CsvQuarantine {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
}

impl CsvQuarantine {
    /// Creates `<dir>/<publication_id>.csv`.
    pub fn create(dir: &Path, publication_id: &str) -> Result<Self, FerryError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{publication_id}.csv"));
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(BufWriter::new(File::create(&path)?));
        // Rows vary in width when the field count is wrong, so the header names the fixed part.
        writer
            .write_record(["_line", "_column", "_reason", "fields..."])
            .map_err(quarantine_error)?;
        Ok(Self { path, writer })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn quarantine_error(e: csv::Error) -> FerryError {
    FerryError::Internal(format!("writing the quarantine file: {e}"))
}

impl Quarantine for CsvQuarantine {
    fn put(&mut self, record: RejectedRecord<'_>) -> Result<(), FerryError> {
        let line = record.error.line.to_string();
        let fixed = [
            line.as_bytes(),
            record.error.column.as_bytes(),
            record.error.reason.as_bytes(),
        ];
        self.writer
            .write_record(fixed.into_iter().chain(record.fields.iter()))
            .map_err(quarantine_error)
    }

    fn finish(self: Box<Self>) -> Result<(), FerryError> {
        let mut writer = self.writer;
        writer.flush()?;
        Ok(())
    }
}
