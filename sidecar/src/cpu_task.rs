//! Samples the app's CPU use every `cpu.interval` on the control thread and publishes it for
//! the load reports (requests only read an atomic). A reload with other `cpu` settings starts
//! a fresh sampler.

use std::sync::Arc;

use crate::cpu::CpuSampler;
use crate::state::Sidecar;

pub async fn run(sc: Arc<Sidecar>) {
    let mut spec = sc.config().inbound.cpu.clone();
    let port = sc.config().inbound.app.port();
    let mut sampler = CpuSampler::new(&spec, port);
    loop {
        let config = sc.config();
        if config.inbound.cpu != spec {
            spec = config.inbound.cpu.clone();
            sampler = CpuSampler::new(&spec, port);
        }
        let value = sampler.sample(std::time::Instant::now());
        sc.set_cpu(value, sampler.source().label());
        tokio::time::sleep(spec.interval).await;
    }
}
