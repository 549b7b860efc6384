//! Many sources through one rtinfer on request pads: batching, per-stream EOS, a stalled
//! source, and sources added and removed while PLAYING.

mod common;
use common::*;
use gst::prelude::*;
use rttest::rss_kib;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Collects the detections reaching each appsink named `out<N>`.
fn collect(pipeline: &gst::Pipeline, n: usize) -> Vec<Arc<Mutex<Vec<rtmeta::Detections>>>> {
    (0..n)
        .map(|i| {
            let found = Arc::new(Mutex::new(Vec::new()));
            let f = found.clone();
            let sink = appsink(pipeline, &format!("out{i}"));
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        f.lock().unwrap().push(
                            rtmeta::Detections::from_buffer(sample.buffer().unwrap()).unwrap(),
                        );
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            found
        })
        .collect()
}

fn photo(image: &str, frames: u32, pad: u32) -> String {
    format!(
        "filesrc location={DARKNET}/{image}.jpg ! jpegdec ! videoconvert ! imagefreeze num-buffers={frames} ! rtpreprocess ! i.sink_{pad} "
    )
}

#[test]
fn four_sources_of_different_sizes_through_one_model() {
    init();
    let line = format!(
        "rtinfer name=i batch-size=4 batch-timeout=200 stats-interval=0 model-file={} \
         {} {} {} videotestsrc num-buffers=5 ! video/x-raw,width=320,height=240 ! i.sink_3 \
         i.src_0 ! appsink name=out0 i.src_1 ! appsink name=out1 i.src_2 ! appsink name=out2 i.src_3 ! appsink name=out3",
        model("yolox_nano.onnx"),
        photo("dog", 5, 0),
        photo("person", 5, 1),
        photo("horses", 5, 2)
    );
    let pipeline = launch_pipeline(&line);
    let outs = collect(&pipeline, 4);
    let (end, messages) = run(&pipeline);
    assert!(matches!(end, End::Eos), "{end:?}");
    for (i, image) in ["dog", "person", "horses"].iter().enumerate() {
        let dets = outs[i].lock().unwrap();
        assert_eq!(dets.len(), 5, "{image}");
        for d in dets.iter() {
            assert_eq!(d.source_id, i as u32, "the source id is the pad's");
            let problems = compare(&golden("yolox_nano", image), &d.objects);
            assert!(problems.is_empty(), "{image}: {problems:#?}");
        }
    }
    let test = outs[3].lock().unwrap();
    assert_eq!((test.len(), test[0].width, test[0].source_id), (5, 320, 3));
    let stats = last_stats(&messages);
    assert_eq!(stats.get::<u64>("inferences").unwrap(), 20);
    // A fixed-batch model runs each frame on its own, on the next free request.
    assert_eq!(stats.get::<u64>("model-runs").unwrap(), 20);
    assert!(stats.get::<u32>("requests").unwrap() >= 1);
}

#[test]
fn eos_on_one_stream_ends_only_that_stream() {
    init();
    let line = format!(
        "rtinfer name=i model-file={} {} {} i.src_0 ! appsink name=out0 i.src_1 ! appsink name=out1",
        model("yolox_nano.onnx"),
        photo("dog", 2, 0),
        photo("person", 12, 1)
    );
    let pipeline = launch_pipeline(&line);
    let outs = collect(&pipeline, 2);
    let (end, _) = run(&pipeline);
    assert!(matches!(end, End::Eos), "{end:?}");
    assert_eq!(outs[0].lock().unwrap().len(), 2);
    let second: Vec<u64> = outs[1]
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.frame_number)
        .collect();
    assert_eq!(
        second,
        (0..12).collect::<Vec<_>>(),
        "the other stream ran to its end"
    );
}

#[test]
fn a_stalled_source_does_not_stall_the_others() {
    init();
    // sink_0 is linked but never gets a frame; sink_1 must still flow (each frame waits at
    // most batch-timeout for a batch partner).
    let line = format!(
        "rtinfer name=i batch-timeout=30 model-file={} \
         appsrc name=stalled caps=video/x-raw,format=RGB,width=64,height=48,framerate=10/1 format=time ! i.sink_0 \
         {} i.src_0 ! appsink name=out0 async=false i.src_1 ! appsink name=out1",
        model("yolox_nano.onnx"),
        photo("dog", 10, 1)
    );
    let pipeline = launch_pipeline(&line);
    let outs = collect(&pipeline, 2);
    let stalled = pipeline
        .by_name("stalled")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let done = outs[1].clone();
    let watcher = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(60);
        while done.lock().unwrap().len() < 10 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = stalled.end_of_stream();
    });
    let (end, _) = run(&pipeline);
    watcher.join().unwrap();
    assert!(matches!(end, End::Eos), "{end:?}");
    assert_eq!(
        outs[1].lock().unwrap().len(),
        10,
        "the live stream got all its frames"
    );
    assert!(outs[0].lock().unwrap().is_empty());
}

/// Adds a source on a new request pad, lets it run to its end, and removes it again.
fn add_run_remove(pipeline: &gst::Pipeline, infer: &gst::Element) {
    let src = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", 2i32)
        .build()
        .unwrap();
    let filter = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .field("width", 64)
                .field("height", 48)
                .build(),
        )
        .build()
        .unwrap();
    let sink = gst::ElementFactory::make("fakesink")
        .property("async", false)
        .build()
        .unwrap();
    pipeline.add_many([&src, &filter, &sink]).unwrap();
    src.link(&filter).unwrap();
    let sinkpad = infer.request_pad_simple("sink_%u").expect("a new stream");
    filter.static_pad("src").unwrap().link(&sinkpad).unwrap();
    let name = sinkpad.name().replace("sink_", "src_");
    let srcpad = infer.static_pad(&name).expect("its src pad");
    srcpad.link(&sink.static_pad("sink").unwrap()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    sink.static_pad("sink").unwrap().add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            if let Some(gst::PadProbeData::Event(e)) = &info.data
                && e.type_() == gst::EventType::Eos
            {
                let _ = tx.send(());
            }
            gst::PadProbeReturn::Ok
        },
    );
    for e in [&sink, &filter, &src] {
        e.sync_state_with_parent().unwrap();
    }
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the added source ran to its end");
    for e in [&src, &filter, &sink] {
        e.set_state(gst::State::Null).unwrap();
    }
    infer.release_request_pad(&sinkpad);
    pipeline.remove_many([&src, &filter, &sink]).unwrap();
}

#[test]
fn sources_added_and_removed_while_playing() {
    init();
    let line = format!(
        "rtinfer name=i requests=2 batch-timeout=10 model-file={} \
         videotestsrc is-live=true ! video/x-raw,format=RGB,width=64,height=48,framerate=50/1 ! i.sink_100 \
         i.src_100 ! fakesink name=main",
        model("yolox_nano.onnx")
    );
    let pipeline = launch_pipeline(&line);
    let infer = pipeline.by_name("i").unwrap();
    let main = Arc::new(AtomicU64::new(0));
    let m = main.clone();
    pipeline
        .by_name("main")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            m.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let rounds: usize = std::env::var("RT_ADD_REMOVE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // Drained every round, as an application does: undrained messages would count as growth.
    let bus = pipeline.bus().unwrap();
    let round = || {
        add_run_remove(&pipeline, &infer);
        while let Some(m) = bus.pop() {
            assert!(m.type_() != gst::MessageType::Error, "{m:?}");
        }
    };
    // Warm-up: every inference request's arena and the thread pools reach their working size
    // in the first ~100 rounds; growth after that would be a leak.
    for _ in 0..100 {
        round();
    }
    let rss_before = rss_kib();
    let mut last_main = main.load(Ordering::Relaxed);
    for k in 0..rounds {
        round();
        if k % 20 == 19 {
            let now = main.load(Ordering::Relaxed);
            assert!(now > last_main, "the main stream kept flowing (round {k})");
            last_main = now;
        }
    }
    let rss_after = rss_kib();
    assert_eq!(
        infer.pads().len(),
        4,
        "only the always pads and the main stream's pads remain"
    );
    pipeline.set_state(gst::State::Null).unwrap();
    eprintln!("{rounds} add/remove rounds: RSS {rss_before} KiB before, {rss_after} KiB after");
    // A leaked stream (pads, its task's thread, scheduler entries) costs well over 50 KiB.
    assert!(
        rss_after < rss_before + rounds as u64 * 50,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
}

/// Detections of 3 test-pattern streams through the dynamic-batch toy model.
fn dynamic_batch_run(batch_size: u32) -> (Vec<Vec<rtmeta::Detections>>, gst::Structure) {
    init();
    let mut line = format!(
        "rtinfer name=i batch-size={batch_size} batch-timeout=500 stats-interval=0 confidence-threshold=0.3 model-file={} ",
        test_data("dynamic_batch.onnx")
    );
    for (k, pattern) in ["smpte", "ball", "checkers-8"].iter().enumerate() {
        line += &format!(
            "videotestsrc num-buffers=6 pattern={pattern} ! video/x-raw,format=RGB,width=96,height=64 ! i.sink_{k} \
             i.src_{k} ! appsink name=out{k} "
        );
    }
    let pipeline = launch_pipeline(&line);
    let outs = collect(&pipeline, 3);
    let (end, messages) = run(&pipeline);
    assert!(matches!(end, End::Eos), "{end:?}");
    let stats = last_stats(&messages).clone();
    (
        outs.iter()
            .map(|o| std::mem::take(&mut *o.lock().unwrap()))
            .collect(),
        stats,
    )
}

#[test]
fn dynamic_batch_models_run_a_real_batch_with_the_same_results() {
    let (single, single_stats) = dynamic_batch_run(1);
    let (batched, batched_stats) = dynamic_batch_run(3);
    assert_eq!(
        single_stats.get::<u64>("model-runs").unwrap(),
        18,
        "one run per frame"
    );
    let runs = batched_stats.get::<u64>("model-runs").unwrap();
    assert!(
        runs < 18,
        "frames of the 3 streams ran together: {runs} runs for 18 frames"
    );
    for k in 0..3 {
        assert_eq!(batched[k].len(), 6);
        assert!(
            batched[k].iter().any(|d| !d.objects.is_empty()),
            "the toy model detects something"
        );
        assert_eq!(
            batched[k], single[k],
            "stream {k}: a batch gives each frame its own detections"
        );
    }
    // The streams really differ, so mixing them up would show.
    assert_ne!(single[0][0].objects, single[1][0].objects);
}

/// An accurate flushing seek to `target`.
/// Seeks one stream: pushed upstream from its sink's pad. Not `Element::send_event` on the
/// sink, which holds the sink's state lock while the seek runs: a LATENCY message handled
/// meanwhile (rtinfer posts one when its run time grows) sends the latency event from the
/// pipeline to its sinks, and the two lock orders deadlock inside GStreamer.
fn seek_stream(sink: &gst::Element, target: gst::ClockTime) -> bool {
    sink.static_pad("sink")
        .unwrap()
        .push_event(flushing_seek(target))
}

fn flushing_seek(target: gst::ClockTime) -> gst::Event {
    gst::event::Seek::new(
        1.0,
        gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
        gst::SeekType::Set,
        target,
        gst::SeekType::None,
        gst::ClockTime::NONE,
    )
}

#[test]
fn a_flushing_seek_on_one_stream_leaves_the_other_alone() {
    init();
    // Stream 0 is vtest.avi (seekable), stream 1 a photo. After 10 frames, stream 0 alone is
    // seeked (the event goes upstream from its own sink through src_0/sink_0), to 70 s.
    let line = format!(
        "rtinfer name=i model-file={} \
         filesrc location={VTEST} ! decodebin ! videoconvert ! rtpreprocess ! i.sink_0 {} \
         i.src_0 ! appsink name=out0 sync=false i.src_1 ! appsink name=out1 sync=false",
        model("yolox_nano.onnx"),
        photo("person", 40, 1)
    );
    let pipeline = launch_pipeline(&line);
    type Seen = Arc<Mutex<Vec<(gst::ClockTime, rtmeta::Detections)>>>;
    let outs: Vec<Seen> = (0..2)
        .map(|i| {
            let seen: Seen = Arc::default();
            let s2 = seen.clone();
            let sink = pipeline.by_name(&format!("out{i}")).unwrap();
            let sink = sink.downcast::<gst_app::AppSink>().unwrap();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let buf = sample.buffer().unwrap();
                        let d = rtmeta::Detections::from_buffer(buf).unwrap();
                        s2.lock().unwrap().push((buf.pts().unwrap(), d));
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            seen
        })
        .collect();
    let out0 = pipeline.by_name("out0").unwrap();
    let target = gst::ClockTime::from_seconds(70);
    let seeker = {
        let seen = outs[0].clone();
        std::thread::spawn(move || {
            wait_until("stream 0 to reach 10 frames", 60, || {
                seen.lock().unwrap().len() >= 10
            });
            assert!(
                seek_stream(&out0, target),
                "the seek reached the file source"
            );
        })
    };
    let (end, _) = run(&pipeline);
    seeker.join().unwrap();
    assert!(matches!(end, End::Eos), "{end:?}");

    let first = outs[0].lock().unwrap();
    let jump = first
        .iter()
        .position(|(pts, _)| *pts >= target)
        .expect("stream 0 played on from the seek target");
    assert!((10..30).contains(&jump), "frames before the seek: {jump}");
    let after = &first[jump..];
    // vtest.avi is 10 fps and 79.5 s long: 95 frames from 70 s to the end.
    assert!((90..=96).contains(&after.len()), "{} frames", after.len());
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0), "in order");
    let people = after
        .iter()
        .filter(|(_, d)| d.objects.iter().any(|o| o.label == "person"))
        .count();
    assert!(people >= after.len() * 9 / 10, "detections after the seek");

    let second: Vec<u64> = outs[1]
        .lock()
        .unwrap()
        .iter()
        .map(|(_, d)| d.frame_number)
        .collect();
    assert_eq!(
        second,
        (0..40).collect::<Vec<_>>(),
        "stream 1 was not touched"
    );
}

#[test]
fn a_flush_withdraws_a_frame_waiting_for_its_batch() {
    init();
    // Stream 1 is live and has sent nothing, so with a dynamic-batch model stream 0's first
    // frame waits up to batch-timeout (10 s) for a batch partner. A flushing seek on stream
    // 0 must take that frame back at once: it is never inferred and never pushed.
    let line = format!(
        "rtinfer name=i batch-size=2 batch-timeout=10000 stats-interval=0 model-file={} \
         filesrc location={VTEST} ! decodebin ! videoconvert ! rtpreprocess ! i.sink_0 \
         appsrc name=stalled is-live=true format=time \
           caps=video/x-raw,format=RGB,width=64,height=48,framerate=10/1 ! i.sink_1 \
         i.src_0 ! appsink name=out0 sync=false async=false \
         i.src_1 ! appsink name=out1 async=false",
        test_data("dynamic_batch.onnx"),
    );
    let pipeline = launch_pipeline(&line);
    let seen: Arc<Mutex<Vec<gst::ClockTime>>> = Arc::default();
    let s2 = seen.clone();
    let out0 = pipeline.by_name("out0").unwrap();
    out0.clone()
        .downcast::<gst_app::AppSink>()
        .unwrap()
        .set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    s2.lock()
                        .unwrap()
                        .push(sample.buffer().unwrap().pts().unwrap());
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    let stalled = pipeline
        .by_name("stalled")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let infer = pipeline.by_name("i").unwrap();
    let target = gst::ClockTime::from_seconds(75);
    // Only one frame from before the seek reaches rtinfer: two of stream 0's own would fill
    // the batch of 2 and run without waiting for stream 1.
    let passed = Arc::new(AtomicU64::new(0));
    infer
        .static_pad("sink_0")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let early = info
                .buffer()
                .and_then(|b| b.pts())
                .is_some_and(|t| t < target);
            if early && passed.fetch_add(1, Ordering::Relaxed) > 0 {
                gst::PadProbeReturn::Drop
            } else {
                gst::PadProbeReturn::Ok
            }
        });
    let seeker = std::thread::spawn(move || {
        // Until stream 0's first frames are waiting in rtinfer (several may be: a stream
        // has up to 2 x requests + 1 frames in flight).
        wait_until("stream 0's first frame", 30, || {
            let stats = infer.property::<gst::Structure>("stats");
            stats.get::<u64>("frames").is_ok_and(|n| n >= 1)
                && stats.get::<u64>("inferences") == Ok(0)
        });
        assert!(seek_stream(&out0, target));
        // Now let stream 0 run freely to its end.
        let _ = stalled.end_of_stream();
    });
    let (end, messages) = run(&pipeline);
    seeker.join().unwrap();
    assert!(matches!(end, End::Eos), "{end:?}");
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|pts| *pts >= target),
        "a frame from before the seek"
    );
    assert!(
        (40..=46).contains(&seen.len()),
        "{} frames after 75 s",
        seen.len()
    );
    let stats = last_stats(&messages);
    assert_eq!(
        stats.get::<u64>("inferences").unwrap(),
        seen.len() as u64,
        "the withdrawn frame was not inferred"
    );
}

#[test]
fn a_batch_does_not_wait_for_a_stream_whose_next_frame_interval_skips() {
    init();
    // interval=2: the model runs on frames 0, 2, 4... of each stream. Once stream 1's frame 0
    // is done its next frame is skipped, so stream 0's frame 2 must run at once, not after
    // waiting batch-timeout (10 s) for a partner that cannot come (a dynamic-batch model,
    // whose batches wait for every due stream).
    let src = |name: &str, pad: u32| {
        format!(
            "appsrc name={name} is-live=true format=time \
             caps=video/x-raw,format=RGB,width=64,height=48,framerate=10/1 ! i.sink_{pad} "
        )
    };
    let line = format!(
        "rtinfer name=i requests=1 batch-size=2 batch-timeout=10000 interval=2 stats-interval=0 model-file={} \
         {} {} i.src_0 ! appsink name=out0 sync=false async=false \
         i.src_1 ! appsink name=out1 sync=false async=false",
        test_data("dynamic_batch.onnx"),
        src("a", 0),
        src("b", 1),
    );
    let pipeline = launch_pipeline(&line);
    let outs = collect(&pipeline, 2);
    let appsrc = |name: &str| {
        pipeline
            .by_name(name)
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap()
    };
    let (a, b) = (appsrc("a"), appsrc("b"));
    let counts = outs.clone();
    let driver = std::thread::spawn(move || {
        let frame = |i: u64| {
            let mut buf = gst::Buffer::from_mut_slice(vec![0u8; 64 * 48 * 3]);
            buf.get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_mseconds(100 * i));
            buf
        };
        let wait_for = |what: &str, a_frames: usize, b_frames: usize| {
            wait_until(what, 30, || {
                counts[0].lock().unwrap().len() >= a_frames
                    && counts[1].lock().unwrap().len() >= b_frames
            })
        };
        a.push_buffer(frame(0)).unwrap();
        b.push_buffer(frame(0)).unwrap();
        wait_for("the first batch", 1, 1);
        let start = Instant::now();
        a.push_buffer(frame(1)).unwrap();
        a.push_buffer(frame(2)).unwrap();
        wait_for("stream 0's frame 2", 3, 1);
        let waited = start.elapsed();
        b.push_buffer(frame(1)).unwrap();
        b.push_buffer(frame(2)).unwrap();
        wait_for("stream 1's frame 2", 3, 3);
        let _ = a.end_of_stream();
        let _ = b.end_of_stream();
        waited
    });
    let (end, messages) = run(&pipeline);
    let waited = driver.join().unwrap();
    assert!(matches!(end, End::Eos), "{end:?}");
    assert!(
        waited < Duration::from_secs(5),
        "stream 0's frame 2 waited {waited:?} for stream 1"
    );
    for out in &outs {
        let stale: Vec<bool> = out.lock().unwrap().iter().map(|d| d.stale).collect();
        assert_eq!(stale, [false, true, false]);
    }
    let stats = last_stats(&messages);
    // Frames 0 of both streams together, then each stream's frame 2 on its own.
    assert_eq!(stats.get::<u64>("inferences").unwrap(), 4);
    assert_eq!(stats.get::<u64>("batches").unwrap(), 3);
}

#[test]
fn interval_never_carries_detections_across_a_caps_change() {
    init();
    // interval=50: without the reset, the frames of the second (smaller) part would carry
    // the first part's detections, sized for 320x240.
    let line = format!(
        "concat name=c ! rtinfer interval=50 model-file={} ! appsink name=out0 \
         videotestsrc num-buffers=4 ! video/x-raw,format=RGB,width=320,height=240 ! c. \
         videotestsrc num-buffers=4 ! video/x-raw,format=RGB,width=160,height=120 ! c.",
        model("yolox_nano.onnx")
    );
    let pipeline = launch_pipeline(&line);
    let outs = collect(&pipeline, 1);
    let (end, _) = run(&pipeline);
    assert!(matches!(end, End::Eos), "{end:?}");
    let got: Vec<(u32, bool)> = outs[0]
        .lock()
        .unwrap()
        .iter()
        .map(|d| (d.width, d.stale))
        .collect();
    assert_eq!(
        got,
        [
            (320, false),
            (320, true),
            (320, true),
            (320, true),
            (160, false),
            (160, true),
            (160, true),
            (160, true)
        ]
    );
}
