//! The `ferry.v1` API, generated at build time from `proto/ferry/v1/*.proto`.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("ferry.v1");

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("ferry_v1_descriptor");
}

impl v1::Value {
    /// The value as display text; `None` for NULL. Dates are `YYYY-MM-DD`, timestamps RFC 3339
    /// in UTC, decimals exact, bytes base64.
    pub fn to_text(&self) -> Option<String> {
        use v1::value::Kind;
        match self.kind.as_ref()? {
            Kind::NullValue(_) => None,
            Kind::StringValue(s)
            | Kind::DateValue(s)
            | Kind::TimestampValue(s)
            | Kind::DatetimeValue(s)
            | Kind::NumericValue(s) => Some(s.clone()),
            Kind::BytesValue(b) => {
                use base64::Engine as _;
                Some(base64::engine::general_purpose::STANDARD.encode(b))
            }
            Kind::Int64Value(v) => Some(v.to_string()),
            Kind::Float64Value(v) => Some(v.to_string()),
            Kind::BoolValue(v) => Some(v.to_string()),
        }
    }
}
