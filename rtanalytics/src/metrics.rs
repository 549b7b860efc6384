//! Prometheus metrics (`GET /metrics`, OpenMetrics text), read from the service at scrape
//! time: there is one source of truth (the elements' stats and the service's counters),
//! nothing is counted twice, and a removed source's series disappear with it.

use crate::service::Service;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

#[derive(Debug)]
struct Collector(Arc<Service>);

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Service")
    }
}

pub fn registry(service: Arc<Service>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Collector(service)));
    r
}

pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn src(s: &crate::service::SourceStatus) -> Labels<'_> {
    vec![("source", &s.id)]
}

/// One metric family: a name, help, unit, type and its labelled values.
fn family<'a, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (Labels<'a>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit.as_ref(), metric_type)?;
    let mut series: Vec<_> = series.into_iter().collect();
    if series.len() == 1 && series[0].0.is_empty() {
        // One series without labels: `name value`, not `name{} value`.
        return series.pop().expect("one").1.encode(family);
    }
    for (labels, value) in series {
        value.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter<'a>(labels: Labels<'a>, v: u64) -> (Labels<'a>, ConstCounter<u64>) {
    (labels, ConstCounter::new(v))
}

fn gauge<'a>(labels: Labels<'a>, v: f64) -> (Labels<'a>, ConstGauge<f64>) {
    (labels, ConstGauge::new(v))
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let svc = &self.0;
        let sources = svc.statuses();
        use MetricType::{Counter, Gauge};

        family(
            &mut e,
            "rtanalytics_frames",
            "Frames that left the pipeline",
            None,
            Counter,
            sources.iter().map(|s| counter(src(s), s.frames)),
        )?;
        family(
            &mut e,
            "rtanalytics_stale_frames",
            "Frames that carried the last detections instead of new ones (interval, max-latency)",
            None,
            Counter,
            sources.iter().map(|s| counter(src(s), s.stale_frames)),
        )?;
        family(
            &mut e,
            "rtanalytics_detections",
            "Objects detected",
            None,
            Counter,
            sources.iter().map(|s| counter(src(s), s.detections)),
        )?;
        family(
            &mut e,
            "rtanalytics_source_fps",
            "Frames per second over the last second",
            None,
            Gauge,
            sources.iter().map(|s| gauge(src(s), s.fps)),
        )?;
        family(
            &mut e,
            "rtanalytics_source_up",
            "1 while the source delivers (or has ended)",
            None,
            Gauge,
            sources
                .iter()
                .map(|s| gauge(src(s), if s.ready() && s.enabled { 1.0 } else { 0.0 })),
        )?;
        family(
            &mut e,
            "rtanalytics_reconnects",
            "Times the source was rebuilt after a failure or stall",
            None,
            Counter,
            sources.iter().map(|s| counter(src(s), s.reconnects)),
        )?;

        // Alerts by rule and kind, and what throttling held back, by reason.
        let alerts = sources.iter().flat_map(|s| {
            s.alerts.iter().map(move |((rule, kind), n)| {
                counter(vec![("source", &s.id), ("rule", rule), ("kind", kind)], *n)
            })
        });
        family(
            &mut e,
            "rtanalytics_alerts",
            "Alerts emitted",
            None,
            Counter,
            alerts,
        )?;
        let reasons = ["cooldown", "burst", "rate"];
        let suppressed = sources.iter().flat_map(|s| {
            reasons.iter().filter_map(move |r| {
                let n = s
                    .alert_stats
                    .as_ref()?
                    .get::<u64>(format!("suppressed-{r}").as_str())
                    .ok()?;
                Some(counter(vec![("source", &s.id), ("reason", r)], n))
            })
        });
        family(
            &mut e,
            "rtanalytics_alerts_suppressed",
            "Alerts held back by throttling",
            None,
            Counter,
            suppressed,
        )?;

        let outputs = svc.output_stats();
        family(
            &mut e,
            "rtanalytics_output_deliveries",
            "Messages an output delivered",
            None,
            Counter,
            outputs
                .iter()
                .map(|(o, (d, _))| counter(vec![("output", o)], *d)),
        )?;
        family(
            &mut e,
            "rtanalytics_output_drops",
            "Messages an output dropped (queue full, failed delivery, stop timeout)",
            None,
            Counter,
            outputs
                .iter()
                .map(|(o, (_, x))| counter(vec![("output", o)], *x)),
        )?;

        // Inference, from rtinfer's stats.
        let inf = svc.inference_stats();
        let u = |k: &str| inf.get::<u64>(k).unwrap_or(0);
        let f = |k: &str| inf.get::<f64>(k).unwrap_or(0.0);
        family(
            &mut e,
            "rtanalytics_inferences",
            "Frames the model ran on",
            None,
            Counter,
            [counter(vec![], u("inferences"))],
        )?;
        family(
            &mut e,
            "rtanalytics_model_runs",
            "Model executions (one per batch)",
            None,
            Counter,
            [counter(vec![], u("model-runs"))],
        )?;
        family(
            &mut e,
            "rtanalytics_skipped_frames",
            "Frames not inferred because they would have waited longer than max-latency",
            None,
            Counter,
            [counter(vec![], u("skipped"))],
        )?;
        family(
            &mut e,
            "rtanalytics_batch_size",
            "Mean frames per model run",
            None,
            Gauge,
            [gauge(vec![], f("mean-batch-size"))],
        )?;
        family(
            &mut e,
            "rtanalytics_busy_requests",
            "Mean model executions in flight",
            None,
            Gauge,
            [gauge(vec![], f("mean-busy-requests"))],
        )?;
        family(
            &mut e,
            "rtanalytics_frame_latency_p95_seconds",
            "95th percentile of the time from arrival at rtinfer to leaving it (recent frames)",
            None,
            Gauge,
            [gauge(vec![], f("p95-latency-ms") / 1e3)],
        )?;
        let bounds: Vec<f64> = inf
            .get::<gst::Array>("inference-ms-bounds")
            .map(|a| a.iter().filter_map(|v| v.get::<f64>().ok()).collect())
            .unwrap_or_default();
        let counts: Vec<u64> = inf
            .get::<gst::Array>("inference-ms-buckets")
            .map(|a| a.iter().filter_map(|v| v.get::<u64>().ok()).collect())
            .unwrap_or_default();
        if counts.len() == bounds.len() + 1 {
            let mut cumulative = 0;
            let buckets: Vec<(f64, u64)> = bounds
                .iter()
                .map(|b| b / 1e3)
                .chain([f64::INFINITY])
                .zip(&counts)
                .map(|(le, n)| {
                    cumulative += n;
                    (le, cumulative)
                })
                .collect();
            let mut h = e.encode_descriptor(
                "rtanalytics_inference_duration",
                "Time one frame's inference took (per frame of a batch)",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            h.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                f("inference-ms-sum") / 1e3,
                cumulative,
                &buckets,
                None,
            )?;
        }

        let p = crate::procstat::sample();
        family(
            &mut e,
            "rtanalytics_process_resident_memory",
            "Resident memory",
            Some(Unit::Bytes),
            Gauge,
            [gauge(vec![], p.rss_bytes as f64)],
        )?;
        let cpu = e.encode_descriptor(
            "rtanalytics_process_cpu",
            "CPU time used",
            Some(&Unit::Seconds),
            Counter,
        )?;
        ConstCounter::new(p.cpu_seconds).encode(cpu)?;
        family(
            &mut e,
            "rtanalytics_process_threads",
            "Threads of the process",
            None,
            Gauge,
            [gauge(vec![], p.threads as f64)],
        )?;
        family(
            &mut e,
            "rtanalytics_uptime",
            "Time since the service started",
            Some(Unit::Seconds),
            Gauge,
            [gauge(vec![], svc.uptime().as_secs_f64())],
        )?;
        Ok(())
    }
}
