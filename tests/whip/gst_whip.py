#!/usr/bin/python3
"""A WHIP publisher we did not write the WebRTC of: GStreamer's webrtcbin sends test video (VP8)
and audio (Opus) to a WHIP endpoint, for the SFU's tests and by hand.

    /usr/bin/python3 tests/whip/gst_whip.py http://127.0.0.1:8000/whip/room1 --seconds 20

Prints one line per step (`offer`, `status 201`, `location …`, `ice connected`, …); ends the
session with DELETE after --seconds (or on Ctrl-C). Exit status 0 when the session was created,
connected and deleted; 1 otherwise. Debian: python3-gst-1.0, gstreamer1.0-plugins-bad (webrtcbin),
gstreamer1.0-nice, gstreamer1.0-plugins-good (VP8), gstreamer1.0-plugins-base (Opus).
"""
import argparse
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402


def say(*words):
    print(*words, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the WHIP endpoint, e.g. https://sfu.example/whip/room1")
    parser.add_argument("--token", help="join token, sent as `Authorization: Bearer`")
    parser.add_argument("--cafile", help="trust this CA (PEM) for https")
    parser.add_argument("--seconds", type=float, default=10, help="how long to publish")
    parser.add_argument("--save-sdp", metavar="PREFIX", help="write the offer and answer to PREFIX.offer.sdp and PREFIX.answer.sdp")
    parser.add_argument(
        "--local-ip",
        help="gather host candidates on this address too (libnice skips loopback: 127.0.0.1 for an SFU on this machine)",
    )
    args = parser.parse_args()

    Gst.init(None)
    video = "vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay ! application/x-rtp,media=video,encoding-name=VP8,payload=96"
    pipeline = Gst.parse_launch(
        "webrtcbin name=w bundle-policy=max-bundle "
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! "
        f"videoconvert ! {video} ! w. "
        "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay ! "
        "application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! w."
    )
    webrtc = pipeline.get_by_name("w")
    if args.local_ip:
        webrtc.get_property("ice-agent").emit("add-local-ip-address", args.local_ip)
    loop = GLib.MainLoop()
    context = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    state = {"location": None, "ok": False, "connected": False}

    def request(method, url, body=None, content_type=None):
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if args.token:
            headers["Authorization"] = f"Bearer {args.token}"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=context, timeout=15) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def on_answer_set(promise, _):
        promise.wait()
        say("answer set")

    def publish(offer_text):
        status, headers, body = request("POST", args.url, offer_text.encode(), "application/sdp")
        say("status", status)
        if status != 201:
            say("refused", body.strip())
            GLib.idle_add(loop.quit)
            return
        state["location"] = urllib.parse.urljoin(args.url, headers.get("Location", ""))
        say("location", state["location"])
        say("etag", headers.get("ETag"))
        if args.save_sdp:
            with open(args.save_sdp + ".answer.sdp", "w") as f:
                f.write(body)
        ok, sdp = GstSdp.SDPMessage.new_from_text(body)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        promise = Gst.Promise.new_with_change_func(on_answer_set, None)
        webrtc.emit("set-remote-description", answer, promise)

    def on_offer(promise, _):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply else None
        if offer is None:
            say("no offer:", reply.to_string() if reply else "no reply")
            GLib.idle_add(loop.quit)
            return
        webrtc.emit("set-local-description", offer, Gst.Promise.new())
        text = offer.sdp.as_text()
        if args.save_sdp:
            with open(args.save_sdp + ".offer.sdp", "w") as f:
                f.write(text)
        say("offer", len(text), "bytes")
        # Off the GLib thread: the POST blocks.
        threading.Thread(target=publish, args=(text,), daemon=True).start()

    def on_negotiation_needed(element):
        promise = Gst.Promise.new_with_change_func(on_offer, None)
        element.emit("create-offer", None, promise)

    def on_ice_state(element, _):
        ice = element.get_property("ice-connection-state")
        say("ice", ice.value_nick)
        if ice in (GstWebRTC.WebRTCICEConnectionState.CONNECTED, GstWebRTC.WebRTCICEConnectionState.COMPLETED):
            state["connected"] = True

    def stop():
        if state["location"]:
            status, _, _ = request("DELETE", state["location"])
            say("delete", status)
            state["ok"] = state["connected"] and status == 200
        loop.quit()
        return False

    webrtc.connect("on-negotiation-needed", on_negotiation_needed)
    webrtc.connect("notify::ice-connection-state", on_ice_state)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(args.seconds * 1000), stop)
    try:
        loop.run()
    except KeyboardInterrupt:
        stop()
    pipeline.set_state(Gst.State.NULL)
    say("done", "ok" if state["ok"] else "failed")
    return 0 if state["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
