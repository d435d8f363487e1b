//! A contract's freshness promise: day D's partition is live by `available_by` on day D, in
//! the SLA's time zone.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// When each day's partition is due: day D by `available_by` on day D, in `timezone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// `HH:MM`.
    pub available_by: String,
    /// `UTC`, an IANA zone such as `Europe/Paris` (daylight saving followed), or a fixed offset
    /// such as `+02:00`.
    #[serde(default = "Sla::utc")]
    pub timezone: String,
}

/// The zone an SLA's clock time is read in.
#[derive(Debug, Clone, Copy)]
enum Zone {
    Fixed(chrono::FixedOffset),
    Named(chrono_tz::Tz),
}

impl Sla {
    fn utc() -> String {
        "UTC".into()
    }

    fn zone(&self) -> Result<Zone, String> {
        let zone = self.timezone.trim();
        if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
            return Ok(Zone::Named(chrono_tz::UTC));
        }
        if zone.starts_with(['+', '-']) {
            return DateTime::parse_from_str(
                &format!("2000-01-01T00:00:00{zone}"),
                "%Y-%m-%dT%H:%M:%S%:z",
            )
            .map(|parsed| Zone::Fixed(*parsed.offset()))
            .map_err(|_| {
                format!("sla.timezone {zone:?} is not an offset; write it as +02:00 or -05:30")
            });
        }
        zone.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            format!(
                "sla.timezone {zone:?} is not a time zone: use UTC, an IANA name such as \
                 Europe/Paris, or a fixed offset such as +02:00"
            )
        })
    }

    fn time(&self) -> Result<NaiveTime, String> {
        NaiveTime::parse_from_str(&self.available_by, "%H:%M")
            .map_err(|_| format!("sla.available_by {:?} must be HH:MM", self.available_by))
    }

    pub fn check(&self) -> Result<(), String> {
        self.zone().map(|_| ())?;
        self.time().map(|_| ())
    }

    /// The day whose partition is due at `now`, and when it was due: today in the SLA's zone,
    /// once `available_by` has passed.
    pub fn due(&self, now: DateTime<Utc>) -> Option<(NaiveDate, DateTime<Utc>)> {
        let (zone, time) = (self.zone().ok()?, self.time().ok()?);
        let (today, deadline) = match zone {
            Zone::Fixed(offset) => local_deadline(&offset, now, time),
            Zone::Named(tz) => local_deadline(&tz, now, time),
        };
        (now >= deadline).then_some((today, deadline))
    }

    /// Whether the day due at `now` is late, given the latest live partition.
    pub fn late_day(&self, latest: Option<NaiveDate>, now: DateTime<Utc>) -> Option<NaiveDate> {
        let (due, _) = self.due(now)?;
        (latest.is_none_or(|latest| latest < due)).then_some(due)
    }
}

/// Today in `zone` at `now`, and `time` on that day as an instant. A time that a clock change
/// skips (02:30 on the spring-forward night) is due when the clock reaches it, an hour on; a
/// time the autumn night has twice is due the first time.
fn local_deadline<Z: TimeZone>(
    zone: &Z,
    now: DateTime<Utc>,
    time: NaiveTime,
) -> (NaiveDate, DateTime<Utc>) {
    let today = now.with_timezone(zone).date_naive();
    let local = today.and_time(time);
    let deadline = match zone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.with_timezone(&Utc),
        LocalResult::None => zone
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map_or(now, |at| at.with_timezone(&Utc)),
    };
    (today, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("instant")
            .to_utc()
    }

    fn day(text: &str) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
    }

    fn sla(available_by: &str, timezone: &str) -> Sla {
        Sla {
            available_by: available_by.into(),
            timezone: timezone.into(),
        }
    }

    #[test]
    fn a_fixed_offset_makes_a_day_due_at_its_time() {
        let paris = sla("06:00", "+02:00");
        // 06:00 at +02:00 is 04:00 UTC.
        assert_eq!(
            paris.late_day(day("2021-04-03"), at("2021-04-04T03:59:00Z")),
            None
        );
        assert_eq!(
            paris.late_day(day("2021-04-03"), at("2021-04-04T04:00:00Z")),
            day("2021-04-04")
        );
        assert_eq!(
            paris.late_day(day("2021-04-04"), at("2021-04-04T23:00:00Z")),
            None
        );
        assert_eq!(
            paris.late_day(None, at("2021-04-04T05:00:00Z")),
            day("2021-04-04")
        );
    }

    #[test]
    fn a_named_zone_follows_daylight_saving() {
        let paris = sla("06:00", "Europe/Paris");
        // Winter: UTC+1, so 06:00 is 05:00 UTC. Summer: UTC+2, 04:00 UTC.
        assert_eq!(
            paris.due(at("2021-01-10T05:00:00Z")).map(|d| d.1),
            Some(at("2021-01-10T05:00:00Z"))
        );
        assert_eq!(paris.due(at("2021-01-10T04:59:00Z")), None);
        assert_eq!(
            paris.due(at("2021-07-10T04:00:00Z")).map(|d| d.1),
            Some(at("2021-07-10T04:00:00Z"))
        );
        // Late in the UTC evening it is already tomorrow in Tokyo, and tomorrow is not due yet.
        let tokyo = sla("06:00", "Asia/Tokyo");
        assert_eq!(tokyo.due(at("2021-07-10T16:00:00Z")), None);
        assert_eq!(
            tokyo.due(at("2021-07-10T21:00:00Z")).map(|d| d.0),
            day("2021-07-11")
        );
    }

    #[test]
    fn a_skipped_local_time_is_due_an_hour_on() {
        // Paris skips 02:00-03:00 on 2021-03-28: 02:30 does not exist; it is due at 03:30 CEST.
        let night = sla("02:30", "Europe/Paris");
        assert_eq!(
            night.due(at("2021-03-28T02:00:00Z")).map(|d| d.1),
            Some(at("2021-03-28T01:30:00Z"))
        );
        assert_eq!(night.due(at("2021-03-28T01:29:00Z")), None);
    }

    #[test]
    fn bad_times_and_zones_are_refused_with_what_is_accepted() {
        assert!(sla("6am", "UTC").check().unwrap_err().contains("HH:MM"));
        let err = sla("06:00", "Mars/Olympus").check().unwrap_err();
        assert!(err.contains("IANA name"), "{err}");
        let err = sla("06:00", "+25:00").check().unwrap_err();
        assert!(err.contains("offset"), "{err}");
        for zone in [
            "UTC",
            "utc",
            "Z",
            "Europe/Paris",
            "America/New_York",
            "-05:30",
        ] {
            sla("06:00", zone).check().expect(zone);
        }
    }
}
