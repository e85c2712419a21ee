//! What `[broker]` must be for each [`Deployment`]: required (and checked) in a cluster,
//! ignored with a warning in standalone mode.

use std::path::Path;

use tunasync_shared::broker::{BrokerConfig, Deployment};

use super::Collector;

/// The resolved `[broker]`: `None` when a problem was recorded, `Some(None)` in standalone.
pub(super) fn broker(
    deployment: Deployment,
    raw: Option<BrokerConfig>,
    file: &Path,
    collector: &mut Collector,
) -> Option<Option<BrokerConfig>> {
    match (deployment, raw) {
        (Deployment::Cluster, Some(broker)) => match broker.validate() {
            Ok(()) => Some(Some(broker)),
            Err(err) => {
                collector.problem(file, "broker", err.to_string());
                None
            }
        },
        (Deployment::Cluster, None) => {
            collector.problem(file, "broker", "the [broker] section is required (url, ca_cert, …): workers reach the manager through RabbitMQ");
            None
        }
        (Deployment::Standalone, Some(_)) => {
            collector.warn(
                file,
                "[broker] is ignored in standalone mode (run `tunasync manager` and `tunasync worker` to use it)",
            );
            Some(None)
        }
        (Deployment::Standalone, None) => Some(None),
    }
}
