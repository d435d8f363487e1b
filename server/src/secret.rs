//! Configured secrets and secret-bearing URLs: usable by the server, never printed by `Debug`,
//! `ferry-server config`, logs or errors.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// A configured secret: usable by the server, never printed by `Debug` or `ferry-server config`,
/// and wiped from memory when dropped (`secrecy`).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// A URL that may carry a password (a database URL): usable by the server, printed by `Debug`
/// and `Serialize` with the password redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&redact_url(&self.0))
    }
}

/// `url` with any password replaced by `redacted`; text that is not a URL is shown as is only
/// when it holds no `@` (which could precede a password in a malformed URL).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) if url.contains('@') => "<redacted>".to_owned(),
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_everything_but_the_password() {
        assert_eq!(
            redact_url("postgres://ferry:hunter2@db:5432/ferry?sslmode=require"),
            "postgres://ferry:redacted@db:5432/ferry?sslmode=require"
        );
        assert_eq!(
            redact_url("sqlite:///srv/ferry/registry.sqlite"),
            "sqlite:///srv/ferry/registry.sqlite"
        );
        assert_eq!(redact_url("not a url user:pw@host"), "<redacted>");
    }
}
