//! Small protobuf builders shared by the translation files.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, socket_address, Address, AggregatedConfigSource, ApiVersion,
    ConfigSource, SocketAddress,
};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};

/// A protobuf `Duration`.
pub fn duration(d: Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Zero: Envoy reads it as "disabled" for route and idle timeouts.
pub fn zero_duration() -> PbDuration {
    PbDuration::default()
}

/// A `UInt32Value` wrapper.
pub fn u32v(value: u32) -> UInt32Value {
    UInt32Value { value }
}

/// Every cross-reference goes over the same ADS stream (xDS spec,
/// "Aggregated Discovery Service"): `{ ads: {}, resource_api_version: V3 }`.
pub fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource::default(),
        )),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

/// A TCP socket address.
pub fn socket(address: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// A percentage (0..=100, fractional) as parts per million, the form
/// Istio uses for `mirrorPercentage` and fault percentages.
pub fn per_million(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32,
        denominator: DenominatorType::Million as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentages() {
        let d = duration(Duration::from_millis(1500));
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
        assert_eq!(per_million(10.0).numerator, 100_000);
        assert_eq!(per_million(0.5).numerator, 5_000);
        assert_eq!(per_million(250.0).numerator, 1_000_000);
    }
}
