//! `--format table|json` for the commands that show or list things. JSON is the response message
//! in the protobuf JSON mapping (field names in lowerCamelCase, enums by name, timestamps in
//! RFC 3339, 64-bit integers as strings), so scripts get every field and never parse a table.

use std::io::Write;
use std::sync::OnceLock;

use anyhow::Context;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Listing {
    /// For people.
    #[default]
    Table,
    /// The response message as JSON, for scripts.
    Json,
}

#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ListingArgs {
    /// Output: a table for people, or the whole response as JSON for scripts.
    #[arg(long, value_enum, default_value_t)]
    pub format: Listing,
}

fn pool() -> anyhow::Result<&'static DescriptorPool> {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let pool = DescriptorPool::decode(ferry_proto::v1::FILE_DESCRIPTOR_SET)
        .context("the CLI's own API descriptors do not decode")?;
    Ok(POOL.get_or_init(|| pool))
}

/// Writes `message` (of protobuf type `ferry.v1.<name>`) as pretty JSON, defaults included.
pub fn write_json(
    out: &mut impl Write,
    name: &str,
    message: &impl prost::Message,
) -> anyhow::Result<()> {
    let full_name = format!("ferry.v1.{name}");
    let descriptor = pool()?
        .get_message_by_name(&full_name)
        .with_context(|| format!("no message {full_name} in the API"))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())?;
    let mut serializer = serde_json::Serializer::pretty(&mut *out);
    dynamic.serialize_with_options(
        &mut serializer,
        &SerializeOptions::new().skip_default_fields(false),
    )?;
    writeln!(out)?;
    Ok(())
}
