//! ZIM SDK version strings as sent in `login`, parsed so features can be gated by version.

use std::fmt;
use std::str::FromStr;

/// `MAJOR.MINOR.PATCH`; compares numerically, field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SdkVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// ZIM delivers push-to-all broadcasts only to SDKs from 2.10.0 on (spec §1.3).
pub const BROADCAST_MIN: SdkVersion = SdkVersion::new(2, 10, 0);

impl SdkVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        SdkVersion { major, minor, patch }
    }
}

impl fmt::Display for SdkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why an SDK version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SDK version {input:?}: expected MAJOR.MINOR or MAJOR.MINOR.PATCH with decimal numbers, optionally followed by -pre-release or +build")]
pub struct ParseVersionError {
    pub input: String,
}

impl FromStr for SdkVersion {
    type Err = ParseVersionError;

    /// Accepts `2.10`, `2.10.0` and `2.10.0-beta.1`; a pre-release or build suffix is ignored
    /// because feature gates care only about the release line the SDK belongs to.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseVersionError { input: s.to_owned() };
        let core = s.split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.').map(|part| {
            // u32::from_str accepts a leading '+', which is not part of any version syntax.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse::<u32>().map_err(|_| err())
        });
        let major = parts.next().ok_or_else(err)??;
        let minor = parts.next().ok_or_else(err)??;
        let patch = parts.next().transpose()?.unwrap_or(0);
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(SdkVersion { major, minor, patch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> SdkVersion {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_accepted_forms() {
        assert_eq!(v("2.10.0"), SdkVersion::new(2, 10, 0));
        assert_eq!(v("2.10"), SdkVersion::new(2, 10, 0));
        assert_eq!(v("2.10.0-beta.1"), SdkVersion::new(2, 10, 0));
        assert_eq!(v("2.18.3+build.7"), SdkVersion::new(2, 18, 3));
        assert_eq!(v("0.0.0"), SdkVersion::new(0, 0, 0));
        assert_eq!(v("2.10.0").to_string(), "2.10.0");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "2",
            "2.",
            ".10",
            "2..0",
            "2.10.0.1",
            "v2.10.0",
            "2.x",
            "2.+10",
            " 2.10",
            "2.10 ",
            "-beta",
            "99999999999.0",
        ] {
            let err = bad.parse::<SdkVersion>().unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.to_string().starts_with("invalid SDK version"), "{err}");
        }
    }

    #[test]
    fn compares_numerically() {
        assert!(v("2.9.9") < BROADCAST_MIN);
        assert!(v("2.10") >= BROADCAST_MIN);
        assert!(v("2.10.0-beta.1") >= BROADCAST_MIN);
        assert!(v("2.18.0") > v("2.9.0"));
        assert!(v("3.0.0") > v("2.99.99"));
        assert!(v("2.10.1") > v("2.10.0"));
    }
}
