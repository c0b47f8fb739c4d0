//! `RequestAuthentication` (`security.istio.io` v1beta1 and v1) as written.

use serde::Deserialize;

use super::authorization_policy::WorkloadSelector;
use super::Unsupported;

/// `spec` of a `RequestAuthentication`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RequestAuthentication {
    pub selector: Option<WorkloadSelector>,
    pub target_ref: Option<TargetRef>,
    pub target_refs: Option<Vec<TargetRef>>,
    pub jwt_rules: Option<Vec<JwtRule>>,
}

/// Istio's `PolicyTargetReference`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TargetRef {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    pub namespace: Option<String>,
}

/// One entry of `jwtRules`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct JwtRule {
    pub issuer: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub jwks_uri: Option<String>,
    pub jwks: Option<String>,
    #[serde(default)]
    pub from_headers: Vec<JwtHeader>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub forward_original_token: bool,
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    pub timeout: Option<Unsupported>,
    pub space_delimited_claims: Option<Unsupported>,
}

/// `fromHeaders[]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct JwtHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

/// `outputClaimToHeaders[]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ClaimToHeader {
    #[serde(default)]
    pub header: String,
    #[serde(default)]
    pub claim: String,
}
