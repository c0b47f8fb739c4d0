//! The gRPC `RateLimitService`: each descriptor of a request is looked
//! up among the global rules and checked in Redis; one over its limit
//! makes the answer `OVER_LIMIT`. Redis failing is a gRPC error, which
//! the sidecars' filters count (`ratelimit.error`) and let pass
//! (`failure_mode_deny: false`, `ratelimit.failure_mode_allowed`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit, Code, DescriptorStatus, RateLimit as CurrentLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;

use super::limits::{GlobalRule, Limits};
use super::redis::Redis;
use crate::config::model::LimitUnit;
use crate::translate::ratelimit::DOMAIN;

/// The service: the rules in force (swapped on reload) and Redis.
pub struct RateLimitServer {
    limits: Arc<ArcSwap<Limits>>,
    redis: Arc<Redis>,
}

impl RateLimitServer {
    /// A server over `limits` (shared with the reload loop) and `redis`.
    pub fn new(limits: Arc<ArcSwap<Limits>>, redis: Arc<Redis>) -> Self {
        RateLimitServer { limits, redis }
    }

    /// The tonic service.
    pub fn into_service(self) -> RateLimitServiceServer<Self> {
        RateLimitServiceServer::new(self)
    }

    async fn status(
        &self,
        rule: &GlobalRule,
        hits: u32,
    ) -> Result<DescriptorStatus, tonic::Status> {
        let decision = (self.redis.check(&rule.key, &rule.limit, hits).await)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let code = if decision.allowed {
            Code::Ok
        } else {
            Code::OverLimit
        };
        let limit = rule.limit;
        let reset = Duration::from_micros(decision.retry_after_us);
        Ok(DescriptorStatus {
            code: code as i32,
            current_limit: Some(CurrentLimit {
                name: String::new(),
                requests_per_unit: limit.requests,
                unit: unit(limit.unit) as i32,
            }),
            limit_remaining: decision.remaining,
            duration_until_reset: Some(PbDuration {
                seconds: reset.as_secs() as i64,
                nanos: reset.subsec_nanos() as i32,
            }),
            ..Default::default()
        })
    }
}

fn unit(u: LimitUnit) -> Unit {
    match u {
        LimitUnit::Second => Unit::Second,
        LimitUnit::Minute => Unit::Minute,
        LimitUnit::Hour => Unit::Hour,
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimitServer {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let req = request.into_inner();
        if req.domain != DOMAIN {
            let msg = format!("unknown domain {:?}: Trellis serves {DOMAIN:?}", req.domain);
            return Err(tonic::Status::invalid_argument(msg));
        }
        let limits = self.limits.load_full();
        let mut statuses = Vec::with_capacity(req.descriptors.len());
        for d in &req.descriptors {
            let entries: Vec<(String, String)> = (d.entries.iter())
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect();
            let hits = d.hits_addend.map_or(req.hits_addend, |h| h.value as u32);
            statuses.push(match limits.rule(&entries) {
                Some(rule) => self.status(rule, hits).await?,
                None => DescriptorStatus {
                    code: Code::Ok as i32,
                    ..Default::default()
                },
            });
        }
        let over = statuses.iter().any(|s| s.code == Code::OverLimit as i32);
        let overall = if over { Code::OverLimit } else { Code::Ok };
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: overall as i32,
            statuses,
            ..Default::default()
        }))
    }
}
