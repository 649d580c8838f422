//! The host image cache (issue 16) on the SIMULATED world: pulls are the simulated internet's
//! (`images.pull`), the nodes' images are by ID as the loader checks them.

use crate::common::Lab;

fn pulls(lab: &Lab) -> Vec<String> {
    lab.world
        .calls()
        .into_iter()
        .filter(|c| c.op == "images.pull")
        .map(|c| c.target)
        .collect()
}

const PINNED: [&str; 6] = [
    "registry.k8s.io/ingress-nginx/controller:v1.15.1@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
    "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.9@sha256:01038e7de14b78d702d2849c3aad72fd25903c4765af63cf16aa3398f5d5f2dd",
    "docker.io/library/postgres:18.6",
    "docker.io/library/redis:8.10.1",
    "docker.io/hashicorp/http-echo:1.0.0",
    "docker.io/library/busybox:1.37.0",
];

#[test]
fn sim_every_pinned_image_is_pulled_once_and_a_cold_up_after_down_pulls_nothing_even_offline() {
    let lab = Lab::new("cache");
    let up = lab.run(&["up"]);
    assert_eq!(up.code, 0, "{up:?}");
    let mut first = pulls(&lab);
    first.sort();
    let mut want: Vec<String> = PINNED.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(first, want, "each pinned image once");
    // In every node, by the host's ID.
    let state = lab.world.state();
    let node = &state.clusters["devenv"].node_images["devenv-control-plane"];
    for i in PINNED {
        let id = &state.host_images[i].id;
        assert!(node.values().any(|v| v == id), "{i} not in the node: {node:?}");
    }
    assert_eq!(lab.run(&["down"]).code, 0);
    // No network now: the cache is all there is.
    lab.world.with(|s| s.host.offline = true).unwrap();
    let again = lab.run(&["up"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(pulls(&lab).len(), first.len(), "the second cold up pulled");
    // A no-op up does not look at the nodes' images at all.
    let before = lab.world.calls().len();
    assert!(lab.run(&["up"]).stderr.contains("nothing to do"));
    assert!(
        !lab.world.calls()[before..]
            .iter()
            .any(|c| c.op == "images.exec" || c.op == "images.pull"),
        "{:?}",
        &lab.world.calls()[before..]
    );
}

#[test]
fn sim_a_pinned_image_that_cannot_be_pulled_stops_up_before_any_change_with_the_engines_message() {
    let lab = Lab::new("cachefail");
    lab.world
        .with(|s| {
            s.host.unpublished.insert("docker.io/library/redis:8.10.1".into());
        })
        .unwrap();
    let up = lab.run(&["up"]);
    assert_eq!(up.code, 3, "{up:?}");
    assert!(
        up.stderr.contains("docker.io/library/redis:8.10.1: Error response from daemon: manifest for docker.io/library/redis:8.10.1 not found")
            && up.stderr.contains("nothing was changed"),
        "{up:?}"
    );
    assert!(lab.world.state().clusters.is_empty(), "a cluster was made");
    assert!(!lab.mutations().iter().any(|m| m.starts_with("cluster.")));
}

#[test]
fn sim_plan_and_status_show_the_cache_and_imagecache_false_leaves_the_host_alone() {
    let lab = Lab::new("cacheview");
    let plan = lab.run(&["plan"]);
    assert!(
        plan.stdout
            .contains("image cache (this machine's engine -> the nodes):")
            && plan
                .stdout
                .contains("docker.io/library/postgres:18.6: not on this machine (`up` pulls it once)"),
        "{plan:?}"
    );
    assert_eq!(lab.run(&["up", "--no-test"]).code, 0);
    let plan = lab.run(&["plan"]);
    assert!(
        plan.stdout
            .contains("docker.io/library/postgres:18.6: on this machine, on every node"),
        "{plan:?}"
    );
    let status = lab.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("image cache: 6 of 6 pinned image(s) on this machine"),
        "{status:?}"
    );

    let off = Lab::new("cacheoff");
    off.project.write("devenv.yaml", "imageCache: false\n");
    assert_eq!(off.run(&["up"]).code, 0);
    assert!(pulls(&off).is_empty(), "imageCache: false pulled");
    assert!(!off.run(&["plan"]).stdout.contains("image cache"));
}
