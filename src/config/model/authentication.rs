//! `RequestAuthentication` (`security.istio.io` v1beta1 and v1), validated.

use super::{Labels, Origin};

/// One validated `RequestAuthentication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuthentication {
    /// `selector.matchLabels`; `None` selects every workload of the
    /// namespace (or of the mesh, in the root namespace).
    pub selector: Option<Labels>,
    /// `targetRef(s)` of kind `Service`: the names of the services (in
    /// the resource's namespace) whose workloads it applies to; empty:
    /// `selector` decides.
    pub target_services: Vec<String>,
    /// `jwtRules`, in order.
    pub jwt_rules: Vec<JwtRule>,
    /// The declaring resource.
    pub origin: Origin,
}

/// One `jwtRules` entry: one accepted token issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRule {
    /// `issuer` (the token's `iss`).
    pub issuer: String,
    /// `audiences`; empty accepts any `aud`.
    pub audiences: Vec<String>,
    /// Where the verification keys come from.
    pub keys: JwksSource,
    /// `fromHeaders`; with `from_params` empty too, Envoy's default
    /// (`Authorization: Bearer` and `access_token`) applies.
    pub from_headers: Vec<JwtHeader>,
    /// `fromParams`.
    pub from_params: Vec<String>,
    /// `fromCookies`.
    pub from_cookies: Vec<String>,
    /// `forwardOriginalToken`: keep the token header for the app.
    pub forward_original_token: bool,
    /// `outputPayloadToHeader`: the verified payload (base64url) is sent
    /// to the app in this header.
    pub output_payload_to_header: Option<String>,
    /// `outputClaimToHeaders`: `(header, claim)` pairs.
    pub output_claim_to_headers: Vec<(String, String)>,
}

/// `jwks` or `jwksUri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `jwks`: a JSON Web Key Set, checked to parse.
    Inline(String),
    /// `jwksUri`: fetched by the control plane and served inline.
    Uri(String),
}

/// `fromHeaders[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtHeader {
    /// Header name.
    pub name: String,
    /// Value prefix before the token (`Bearer `); may be empty.
    pub prefix: String,
}
