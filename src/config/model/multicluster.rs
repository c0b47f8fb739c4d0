//! `Mesh.spec.multiCluster`: which mesh cluster this control plane serves,
//! on which network, and the remote clusters whose registries it watches
//! (Istio multi-primary, with etcd stores in place of Kubernetes API
//! servers).

/// This cluster and the remote clusters it watches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiCluster {
    /// `clusterName`: this cluster's name; empty when not multi-cluster.
    pub cluster_name: String,
    /// `network`: this cluster's network, and the default network of the
    /// remote clusters that name none.
    pub network: String,
    /// `remoteClusters`, in the order written (names unique).
    pub remotes: Vec<RemoteCluster>,
}

/// A remote cluster: its registry is read (never written) from its store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteCluster {
    /// `name`: the cluster its endpoints are tagged with.
    pub name: String,
    /// `network`: the network its endpoints are tagged with.
    pub network: String,
    /// `store`: its etcd members, `HOST:PORT`.
    pub endpoints: Vec<String>,
    /// `storePrefix`: the prefix its replicas use (`--store-prefix`).
    pub prefix: String,
}
