//! The MRS taxonomy (DESIGN §5). The spellings returned by `as_str` are part of the log schemas.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::MrsError;

/// Detection type: the source category of an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Cause {
    DataError,
    MarketingMisattribution,
    CompetitorStockout,
    SocialViral,
    OperationalStoreIssue,
}

impl Cause {
    pub const ALL: [Cause; 5] = [
        Cause::DataError,
        Cause::MarketingMisattribution,
        Cause::CompetitorStockout,
        Cause::SocialViral,
        Cause::OperationalStoreIssue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::DataError => "Data Error",
            Cause::MarketingMisattribution => "Marketing Misattribution",
            Cause::CompetitorStockout => "Competitor Stockout",
            Cause::SocialViral => "Social/Viral Event",
            Cause::OperationalStoreIssue => "Operational/Store Issue",
        }
    }

    /// The part of the commercial system a cause typically distorts.
    pub fn default_impact(self) -> ImpactVector {
        match self {
            Cause::DataError => ImpactVector::BaselineDrift,
            Cause::MarketingMisattribution => ImpactVector::AttributionError,
            Cause::CompetitorStockout => ImpactVector::BaselineDrift,
            Cause::SocialViral => ImpactVector::SpendLeakage,
            Cause::OperationalStoreIssue => ImpactVector::OperationalDisruption,
        }
    }

    pub fn index(self) -> usize {
        Cause::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cause {
    type Err = MrsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cause::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                MrsError::InvalidArgument(format!(
                    "unknown cause '{s}'; expected one of: {}",
                    Cause::ALL.map(Cause::as_str).join(", ")
                ))
            })
    }
}

/// Which part of the commercial system an anomaly distorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ImpactVector {
    BaselineDrift,
    AttributionError,
    SpendLeakage,
    OperationalDisruption,
}

impl ImpactVector {
    pub const ALL: [ImpactVector; 4] = [
        ImpactVector::BaselineDrift,
        ImpactVector::AttributionError,
        ImpactVector::SpendLeakage,
        ImpactVector::OperationalDisruption,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ImpactVector::BaselineDrift => "baseline drift",
            ImpactVector::AttributionError => "attribution error",
            ImpactVector::SpendLeakage => "spend leakage",
            ImpactVector::OperationalDisruption => "operational disruption",
        }
    }
}

impl fmt::Display for ImpactVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImpactVector {
    type Err = MrsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImpactVector::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| MrsError::InvalidArgument(format!("unknown impact vector '{s}'")))
    }
}

/// Escalation tier of a confidence, used by automation and review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfidenceTier {
    Low,
    Medium,
    High,
}

impl ConfidenceTier {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfidenceTier::Low => "Low",
            ConfidenceTier::Medium => "Medium",
            ConfidenceTier::High => "High",
        }
    }
}

impl fmt::Display for ConfidenceTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tier thresholds are configuration (DESIGN §5); these are the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TierThresholds {
    /// Confidence at or above which a cause is `Medium`.
    pub medium: f64,
    /// Confidence at or above which a cause is `High`.
    pub high: f64,
}

impl Default for TierThresholds {
    fn default() -> Self {
        Self {
            medium: 0.5,
            high: 0.8,
        }
    }
}

impl TierThresholds {
    pub fn tier(&self, confidence: f64) -> ConfidenceTier {
        if confidence >= self.high {
            ConfidenceTier::High
        } else if confidence >= self.medium {
            ConfidenceTier::Medium
        } else {
            ConfidenceTier::Low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for c in Cause::ALL {
            assert_eq!(c.as_str().parse::<Cause>().ok(), Some(c));
        }
        for v in ImpactVector::ALL {
            assert_eq!(v.as_str().parse::<ImpactVector>().ok(), Some(v));
        }
        assert_eq!(Cause::SocialViral.as_str(), "Social/Viral Event");
        assert!("Bogus".parse::<Cause>().is_err());
    }

    #[test]
    fn tiers_follow_thresholds() {
        let t = TierThresholds::default();
        assert_eq!(t.tier(0.1), ConfidenceTier::Low);
        assert_eq!(t.tier(0.5), ConfidenceTier::Medium);
        assert_eq!(t.tier(0.95), ConfidenceTier::High);
    }
}
