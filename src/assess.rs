//! `trellis assess`: the mesh notes' adoption decision framework. Each
//! factor is settled by the config where it can be (service count, traffic
//! splits), else by the user (flags or a terminal prompt, with what the
//! config suggests as the default); the score picks the verdict. Pure: the
//! command line asks and writes.

mod facts;
pub mod starter;

use serde::Serialize;

pub use facts::{facts, Facts};

/// The factors, their points and wording, from the mesh notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Factor {
    /// More than 10 services communicating over the network (+2).
    ManyServices,
    /// Multiple programming languages across services (+2).
    SeveralLanguages,
    /// Regulatory requirement for encrypted internal traffic (+3).
    Regulated,
    /// Need for traffic-level canary deployments (+1).
    Canary,
    /// Debugging cross-service latency is a recurring pain point (+2).
    LatencyPain,
    /// Team has Kubernetes operational experience (+1).
    KubernetesExperience,
    /// Fewer than 5 services total (−3).
    FewServices,
    /// Team is new to Kubernetes (−2).
    NewToKubernetes,
}

impl Factor {
    /// Every factor, in the notes' order.
    pub const ALL: [Factor; 8] = [
        Factor::ManyServices,
        Factor::SeveralLanguages,
        Factor::Regulated,
        Factor::Canary,
        Factor::LatencyPain,
        Factor::KubernetesExperience,
        Factor::FewServices,
        Factor::NewToKubernetes,
    ];

    /// Points when the factor applies.
    pub fn points(self) -> i32 {
        match self {
            Factor::ManyServices | Factor::SeveralLanguages | Factor::LatencyPain => 2,
            Factor::Regulated => 3,
            Factor::Canary | Factor::KubernetesExperience => 1,
            Factor::FewServices => -3,
            Factor::NewToKubernetes => -2,
        }
    }

    /// The notes' wording.
    pub fn text(self) -> &'static str {
        match self {
            Factor::ManyServices => "More than 10 services communicating over the network",
            Factor::SeveralLanguages => "Multiple programming languages across services",
            Factor::Regulated => "Regulatory requirement for encrypted internal traffic",
            Factor::Canary => "Need for traffic-level canary deployments",
            Factor::LatencyPain => "Debugging cross-service latency is a recurring pain point",
            Factor::KubernetesExperience => "Team has Kubernetes operational experience",
            Factor::FewServices => "Fewer than 5 services total",
            Factor::NewToKubernetes => "Team is new to Kubernetes",
        }
    }
}

/// The team's Kubernetes experience (one question settles two factors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kubernetes {
    /// Operates Kubernetes already (+1).
    Experienced,
    /// Adopting Kubernetes now (−2).
    New,
    /// Does not use Kubernetes (VMs, containers): neither factor.
    None,
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Read from the config.
    Config,
    /// Given as a flag.
    Flag,
    /// Answered at the terminal.
    Terminal,
    /// Not answered: counted as 0 points.
    Unknown,
}

/// The answers, each with its source (`None`: unknown).
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// Number of services.
    pub services: Option<(usize, Source)>,
    /// Number of programming languages.
    pub languages: Option<(u32, Source)>,
    /// Encryption required by regulation.
    pub regulated: Option<(bool, Source)>,
    /// Traffic-level canaries needed.
    pub canary: Option<(bool, Source)>,
    /// Cross-service latency debugging hurts.
    pub latency_pain: Option<(bool, Source)>,
    /// Kubernetes experience.
    pub kubernetes: Option<(Kubernetes, Source)>,
}

/// One factor as scored.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// Which factor.
    pub factor: Factor,
    /// Its wording.
    pub text: &'static str,
    /// Points it is worth when it applies.
    pub weight: i32,
    /// `Some(true)` applies, `Some(false)` does not, `None` unknown.
    pub applies: Option<bool>,
    /// Points counted (0 unless it applies).
    pub points: i32,
    /// Where the answer came from.
    pub source: Source,
    /// The answer in words (`12 services`, `--languages 3`).
    pub detail: String,
}

/// The verdict bands of the notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Score ≥ 5.
    StrongCase,
    /// Score 2 to 4.
    MtlsFirst,
    /// Score < 2.
    TooEarly,
}

impl Verdict {
    /// The verdict for `score`.
    pub fn of(score: i32) -> Verdict {
        match score {
            s if s >= 5 => Verdict::StrongCase,
            2..=4 => Verdict::MtlsFirst,
            _ => Verdict::TooEarly,
        }
    }

    /// The notes' wording.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::StrongCase => "Strong case for a mesh",
            Verdict::MtlsFirst => "Consider starting with mTLS only (plus observability)",
            Verdict::TooEarly => "Too early; use application-level libraries instead",
        }
    }
}

/// The whole assessment.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// Every factor.
    pub factors: Vec<Scored>,
    /// Σ points.
    pub score: i32,
    /// The band.
    pub verdict: Verdict,
    /// Factors left unknown (counted as 0).
    pub unknown: usize,
}

fn scored<T>(
    factor: Factor,
    answer: &Option<(T, Source)>,
    test: impl Fn(&T) -> bool,
    show: impl Fn(&T) -> String,
) -> Scored {
    let (applies, source, detail) = match answer {
        Some((v, s)) => (Some(test(v)), s.clone(), show(v)),
        None => (None, Source::Unknown, "unknown (not answered)".to_string()),
    };
    Scored {
        factor,
        text: factor.text(),
        weight: factor.points(),
        applies,
        points: if applies == Some(true) {
            factor.points()
        } else {
            0
        },
        source,
        detail,
    }
}

fn yes_no(b: &bool) -> String {
    (if *b { "yes" } else { "no" }).to_string()
}

/// Scores `answers`.
pub fn assess(a: &Answers) -> Assessment {
    let services = |v: &usize| format!("{v} services");
    let k8s = |k: &Kubernetes| format!("{k:?}").to_lowercase();
    let factors = vec![
        scored(Factor::ManyServices, &a.services, |n| *n > 10, services),
        scored(
            Factor::SeveralLanguages,
            &a.languages,
            |n| *n >= 2,
            |n| format!("{n} language(s)"),
        ),
        scored(Factor::Regulated, &a.regulated, |b| *b, yes_no),
        scored(Factor::Canary, &a.canary, |b| *b, yes_no),
        scored(Factor::LatencyPain, &a.latency_pain, |b| *b, yes_no),
        scored(
            Factor::KubernetesExperience,
            &a.kubernetes,
            |k| *k == Kubernetes::Experienced,
            k8s,
        ),
        scored(Factor::FewServices, &a.services, |n| *n < 5, services),
        scored(
            Factor::NewToKubernetes,
            &a.kubernetes,
            |k| *k == Kubernetes::New,
            k8s,
        ),
    ];
    let score = factors.iter().map(|f| f.points).sum();
    let unknown = factors.iter().filter(|f| f.applies.is_none()).count();
    Assessment {
        factors,
        score,
        verdict: Verdict::of(score),
        unknown,
    }
}

#[cfg(test)]
mod tests;
