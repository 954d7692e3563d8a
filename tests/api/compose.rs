//! What can be checked of the production compose file without a Docker
//! engine: it parses, every service runs a pinned image with a health check,
//! every file it mounts or builds from exists, no two services publish one
//! host port, its volumes and secrets are all declared, and the Dockerfile
//! builds in stages and runs as a user other than root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut documents =
        YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not YAML: {e}"));
    assert_eq!(documents.len(), 1, "{path:?} holds one document");
    resolve_merges(documents.remove(0))
}

/// Applies `<<:` merge keys (aliases are already expanded by the parser).
fn resolve_merges(yaml: Yaml) -> Yaml {
    match yaml {
        Yaml::Hash(hash) => {
            let mut merged = yaml_rust2::yaml::Hash::new();
            let mut inherited = Vec::new();
            for (key, value) in hash {
                if key.as_str() == Some("<<") {
                    inherited.push(resolve_merges(value));
                } else {
                    merged.insert(key, resolve_merges(value));
                }
            }
            for base in inherited {
                if let Yaml::Hash(base) = base {
                    for (key, value) in base {
                        merged.entry(key).or_insert(value);
                    }
                }
            }
            Yaml::Hash(merged)
        }
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(resolve_merges).collect()),
        other => other,
    }
}

fn compose() -> Yaml {
    load(&repo().join("compose/docker-compose.yml"))
}

fn services(compose: &Yaml) -> BTreeMap<String, Yaml> {
    compose["services"]
        .as_hash()
        .expect("a services map")
        .iter()
        .map(|(name, service)| (name.as_str().unwrap().to_owned(), service.clone()))
        .collect()
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_production_shape_is_all_there() {
    let compose = compose();
    let names: BTreeSet<String> = services(&compose).into_keys().collect();
    for expected in [
        "gateway",
        "postgres",
        "redis",
        "clickhouse",
        "kubo1",
        "kubo2",
        "kubo3",
        "cluster1",
        "cluster2",
        "cluster3",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(expected), "no {expected} service: {names:?}");
    }
    for (name, service) in services(&compose) {
        if name.starts_with("cluster") {
            let env = &service["environment"];
            assert_eq!(
                env["CLUSTER_CRDT_TRUSTEDPEERS"].as_str(),
                Some("*"),
                "{name}"
            );
            assert!(env["CLUSTER_SECRET"].as_str().is_some(), "{name}");
        }
    }
    // Prometheus scrapes services of this file, by name.
    let prometheus = load(&repo().join("prometheus.yml"));
    for job in prometheus["scrape_configs"].as_vec().unwrap() {
        for config in job["static_configs"].as_vec().unwrap() {
            for target in strings(&config["targets"]) {
                let host = target.split(':').next().unwrap();
                assert!(
                    host == "localhost" || names.contains(host),
                    "prometheus.yml scrapes {target}, which no service is"
                );
            }
        }
    }
}

#[test]
fn every_image_is_pinned_and_every_service_checked() {
    for (name, service) in services(&compose()) {
        let image = service["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} names no image"));
        let tag = image
            .rsplit_once(':')
            .map(|(_, tag)| tag)
            .filter(|tag| !tag.contains('/'));
        assert!(
            tag.is_some_and(|tag| tag != "latest" && tag.chars().any(|c| c.is_ascii_digit())),
            "{name}: image {image} is not pinned to a version"
        );
        assert!(
            !service["healthcheck"]["test"].is_badvalue(),
            "{name} has no health check"
        );
        assert!(
            service["restart"].as_str().is_some(),
            "{name} has no restart policy"
        );
    }
}

#[test]
fn every_referenced_file_exists() {
    let folder = repo().join("compose");
    for (name, service) in services(&compose()) {
        if let Some(context) = service["build"]["context"].as_str() {
            let context = folder.join(context);
            let dockerfile = service["build"]["dockerfile"]
                .as_str()
                .unwrap_or("Dockerfile");
            assert!(
                context.join(dockerfile).is_file(),
                "{name}: no {dockerfile} in {context:?}"
            );
        }
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if source.starts_with('.') || source.starts_with('/') {
                assert!(
                    folder.join(source).exists(),
                    "{name} mounts {source}, which is missing"
                );
            }
        }
    }
    for file in [
        "prometheus.yml",
        "prometheus/alerts.yml",
        "grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/dashboards/storage-gateway.yml",
        "compose/.env.example",
    ] {
        load_if_yaml(&repo().join(file));
    }
}

fn load_if_yaml(path: &Path) {
    assert!(path.is_file(), "{path:?} is missing");
    if path.extension().is_some_and(|e| e == "yml") {
        load(path);
    }
}

#[test]
fn published_ports_do_not_collide() {
    let mut published = BTreeMap::new();
    for (name, service) in services(&compose()) {
        for port in strings(&service["ports"]) {
            let parts: Vec<&str> = port.split(':').collect();
            assert!(
                parts.len() >= 2,
                "{name}: {port} publishes no host port explicitly"
            );
            let host = parts[..parts.len() - 1].join(":");
            if let Some(other) = published.insert(host.clone(), name.clone()) {
                panic!("{name} and {other} both publish {host}");
            }
        }
    }
    assert!(
        published.contains_key("8080"),
        "the gateway is published: {published:?}"
    );
}

#[test]
fn volumes_and_secrets_are_declared() {
    let compose = compose();
    let declared: BTreeSet<String> = compose["volumes"]
        .as_hash()
        .expect("named volumes")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let mut used = BTreeSet::new();
    for (name, service) in services(&compose) {
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if !(source.starts_with('.') || source.starts_with('/')) {
                assert!(
                    declared.contains(source),
                    "{name} uses undeclared volume {source}"
                );
                used.insert(source.to_owned());
            }
        }
    }
    assert_eq!(used, declared, "declared volumes no service uses");

    // Every ${VAR} has a line in the example env file.
    let text = std::fs::read_to_string(repo().join("compose/docker-compose.yml")).unwrap();
    let example = std::fs::read_to_string(repo().join("compose/.env.example")).unwrap();
    let defined: BTreeSet<&str> = example
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim()))
        .collect();
    for reference in text.split("${").skip(1) {
        let name: String = reference
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            defined.contains(name.as_str()),
            "${{{name}}} is not in .env.example"
        );
    }
}

#[test]
fn the_image_builds_in_stages_and_runs_unprivileged() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let from: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM "))
        .collect();
    assert!(
        from.len() >= 2,
        "one build stage and one runtime stage: {from:?}"
    );
    for image in &from {
        let image = image.split_whitespace().next().unwrap();
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "{image} is not pinned"
        );
    }
    let user = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("USER "))
        .next_back()
        .expect("a USER line");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(repo().join(source).exists(), "COPY of missing {source}");
        }
    }
}
