use super::*;

fn flag<T>(v: T) -> Option<(T, Source)> {
    Some((v, Source::Flag))
}

#[test]
fn scores_every_factor_as_the_notes_weigh_it() {
    let all_yes = Answers {
        services: flag(12),
        languages: flag(3),
        regulated: flag(true),
        canary: flag(true),
        latency_pain: flag(true),
        kubernetes: flag(Kubernetes::Experienced),
    };
    let a = assess(&all_yes);
    assert_eq!(a.score, 2 + 2 + 3 + 1 + 2 + 1);
    assert_eq!(a.verdict, Verdict::StrongCase);
    assert_eq!(a.unknown, 0);

    let small_new = Answers {
        services: flag(3),
        kubernetes: flag(Kubernetes::New),
        ..Answers::default()
    };
    let a = assess(&small_new);
    assert_eq!(a.score, -5);
    assert_eq!(a.verdict, Verdict::TooEarly);
    assert_eq!(a.unknown, 4);
}

#[test]
fn verdict_bands() {
    assert_eq!(Verdict::of(5), Verdict::StrongCase);
    assert_eq!(Verdict::of(4), Verdict::MtlsFirst);
    assert_eq!(Verdict::of(2), Verdict::MtlsFirst);
    assert_eq!(Verdict::of(1), Verdict::TooEarly);
}

#[test]
fn starter_config_loads_and_keeps_the_services() {
    let src = tempfile::tempdir().unwrap();
    let text = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: payment\n  namespace: shop\nspec:\n  hosts: [payment]\n  ports:\n  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n  resolution: STATIC\n  endpoints:\n  - address: 10.0.0.1\n    labels: {version: v1}\n    weight: 2\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: payment\n  namespace: shop\nspec:\n  hosts: [payment]\n  http:\n  - route:\n    - destination: {host: payment}\n";
    std::fs::write(src.path().join("a.yaml"), text).unwrap();
    let mesh = crate::config::load_dir(src.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    for (name, yaml) in starter::files(&mesh).unwrap() {
        std::fs::write(out.path().join(name), yaml).unwrap();
    }
    let starter = crate::config::load_dir(out.path()).unwrap();
    assert_eq!(
        *starter.services,
        mesh.services
            .iter()
            .map(|(h, s)| {
                let mut s = s.clone();
                s.origin = starter.services[h].origin.clone();
                (h.clone(), s)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    );
    assert!(starter.virtual_services.is_empty());
    assert_eq!(starter.peer_authentications.len(), 1);
    let f = facts(&starter);
    assert!(f.tracing);
}

#[test]
fn starter_names_services_known_only_from_sidecars() {
    let src = tempfile::tempdir().unwrap();
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
    std::fs::write(src.path().join("a.yaml"), text).unwrap();
    let mesh = crate::config::load_dir(src.path()).unwrap();
    assert_eq!(facts(&mesh).services, 1);
    let out = tempfile::tempdir().unwrap();
    for (name, yaml) in starter::files(&mesh).unwrap() {
        std::fs::write(out.path().join(name), yaml).unwrap();
    }
    let starter = crate::config::load_dir(out.path()).unwrap();
    let host = crate::config::model::Host::canonical("reviews", "default");
    assert!(
        starter.services.contains_key(&host),
        "{:?}",
        starter.services.keys()
    );
    assert_eq!(facts(&starter).services, 1);
}
