#!/usr/bin/env python3
"""Integration test of shared/http/server: starts http_testd on 127.0.0.1 with PORT=0, reads the
port from its "listening" log line and speaks real HTTP/1.1 to it. Output is TAP.

Usage: test_server.py PATH_TO_http_testd

Every wait is a poll against a deadline on an observable condition (a log line, a metric, a
refused connect), never a bare sleep standing in for an assertion.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

EXE = sys.argv[1] if len(sys.argv) > 1 else "./http_testd"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = "00-%s-00f067aa0ba902b7-01" % TRACE_ID
BODY_MAX = 1024
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


class Daemon:
    """http_testd as a child process; stdout is parsed as JSON log lines by a reader thread."""

    def __init__(self, **env):
        full_env = dict(os.environ)
        full_env.update({"PORT": "0", "TESTD_HOST": "127.0.0.1"})
        full_env.update({k: str(v) for k, v in env.items()})
        self.proc = subprocess.Popen([EXE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env)
        self.lock = threading.Lock()
        self.logs = []
        self.bad_lines = []
        self.stderr = []
        self.readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self.readers:
            t.start()
        line = self.wait_log(lambda l: "port" in l and l.get("message", "").startswith("listening"), 30)
        self.port = int(line["port"])

    def _read_stdout(self):
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                obj = json.loads(text)
            except ValueError:
                with self.lock:
                    self.bad_lines.append(text)
                continue
            with self.lock:
                self.logs.append(obj)

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self.lock:
                self.stderr.append(raw.decode("utf-8", "replace"))

    def find_log(self, pred):
        with self.lock:
            for line in self.logs:
                if pred(line):
                    return line
        return None

    def wait_log(self, pred, timeout=10):
        def check():
            if self.proc.poll() is not None and self.find_log(pred) is None:
                raise AssertionError("daemon exited (%s); stderr: %s" % (self.proc.returncode, "".join(self.stderr)))
            return self.find_log(pred)

        return wait_until(check, timeout, "a matching log line")

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = {"Connection": "close"}
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            res = conn.getresponse()
            data = res.read()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, data
        finally:
            conn.close()

    def metric(self, name):
        status, _, body = self.request("GET", "/metrics")
        assert status == 200, status
        m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
        return float(m.group(1)) if m else None

    def sanitizer_report(self):
        text = "".join(self.stderr)
        return [m for m in SANITIZER_MARKERS if m in text], text


def error_code(body):
    doc = json.loads(body)
    return doc["error"]["code"]


def raw_exchange(port, payload, read_timeout=10):
    """Sends payload bytes on a fresh connection and reads until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before taking everything
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def parse_raw_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class Background:
    """One request on its own thread; .result is (status, headers, body) or the exception."""

    def __init__(self, daemon, method, path, **kw):
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(daemon, method, path), kwargs=kw, daemon=True)
        self.thread.start()

    def _run(self, daemon, method, path, **kw):
        try:
            self.result = daemon.request(method, path, **kw)
        except Exception as e:  # reported by the test that waits on it
            self.result = e

    def join(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background request did not finish in %ss" % timeout
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


# ---- tests: names are sentences ----

def healthz_answers_while_every_worker_is_busy_and_a_full_queue_answers_503_busy(d):
    sleepers = [Background(d, "GET", "/sleep?ms=3000") for _ in range(2)]
    wait_until(lambda: d.metric("http_workers_busy") == 2, 10, "both workers busy")
    t0 = time.monotonic()
    status, headers, body = d.request("GET", "/healthz", timeout=5)
    assert status == 200, status
    assert time.monotonic() - t0 < 1.0, "healthz waited behind the workers"
    status, _, _ = d.request("GET", "/readyz", timeout=5)
    assert status == 200, status

    queued = Background(d, "GET", "/sleep?ms=10")
    wait_until(lambda: d.metric("http_queue_waiting") == 1, 10, "one request queued")
    status, headers, body = d.request("GET", "/sleep?ms=1")
    assert status == 503, status
    assert headers["content-type"].startswith("application/json"), headers
    assert error_code(body) == "busy", body

    for s in sleepers:
        status, _, body = s.join(20)
        assert status == 200 and json.loads(body)["slept_ms"] == 3000, (status, body)
    status, _, _ = queued.join(20)
    assert status == 200, status


def metrics_is_prometheus_text_with_requests_by_route_and_status(d):
    status, headers, body = d.request("GET", "/metrics")
    assert status == 200, status
    assert headers["content-type"].startswith("text/plain"), headers
    text = body.decode()
    assert "# TYPE http_requests_total counter" in text, text
    assert "# TYPE http_request_duration_seconds histogram" in text, text
    assert re.search(r'^http_requests_total\{route="healthz",status="200"\} [1-9]', text, re.M), text
    assert re.search(r'^http_request_duration_seconds_bucket\{route="sleep",le="\+Inf"\} [1-9]', text, re.M), text
    assert re.search(r'^http_request_duration_seconds_count\{route="sleep"\} [1-9]', text, re.M), text


def unknown_route_is_404_json(d):
    status, headers, body = d.request("GET", "/no/such/route")
    assert status == 404, status
    assert headers["content-type"].startswith("application/json"), headers
    assert error_code(body) == "not_found", body


def wrong_method_on_a_known_path_is_405_json_with_allow(d):
    status, headers, body = d.request("POST", "/healthz", body=b"{}")
    assert status == 405, status
    assert error_code(body) == "method_not_allowed", body
    assert headers.get("allow") == "GET", headers
    status, headers, body = d.request("GET", "/echo")
    assert status == 405 and headers.get("allow") == "POST", (status, headers)


def a_body_within_the_cap_is_echoed(d):
    payload = b'{"x":"' + b"a" * 900 + b'"}'
    status, headers, body = d.request("POST", "/echo", body=payload, headers={"Content-Type": "application/json"})
    assert status == 200, status
    assert body == payload
    assert headers["content-type"] == "application/json", headers
    assert headers.get("x-echo-length") == "yes", headers
    d.wait_log(lambda l: l.get("message", "").startswith("after_response on worker"))


def a_body_over_the_cap_is_413_json(d):
    status, headers, body = d.request("POST", "/echo", body=b"x" * (BODY_MAX + 1))
    assert status == 413, status
    assert headers["content-type"].startswith("application/json"), headers
    assert error_code(body) == "too_large", body


def a_100_mb_content_length_is_refused_413_json_without_reading_the_body(d):
    head = (b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n")
    data = raw_exchange(d.port, head + b"x" * 65536)
    status, headers, body = parse_raw_response(data)
    assert status == 413, data[:200]
    assert headers["content-type"].startswith("application/json"), headers
    assert int(headers["content-length"]) == len(body), headers
    assert error_code(body) == "too_large", body


def a_chunked_body_over_the_cap_is_413_json(d):
    chunk = b"x" * 512
    head = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4))
    data = raw_exchange(d.port, head + chunks)
    status, headers, body = parse_raw_response(data)
    assert status == 413, data[:200]
    assert error_code(body) == "too_large", body


def a_handler_error_is_passed_through_as_json(d):
    status, headers, body = d.request("GET", "/fail")
    assert status == 503, status
    assert error_code(body) == "database_unavailable", body


def query_parameters_are_percent_decoded(d):
    status, _, body = d.request("GET", "/sleep?x=1&m%73=%32")
    assert status == 200 and json.loads(body)["slept_ms"] == 2, (status, body)
    status, _, body = d.request("GET", "/sleep?ms=%zz")
    assert status == 400 and error_code(body) == "invalid_argument", (status, body)


def the_traceparent_trace_id_is_in_the_request_log_line(d):
    status, _, _ = d.request("GET", "/sleep?ms=1", headers={"traceparent": TRACEPARENT})
    assert status == 200, status
    line = d.wait_log(lambda l: l.get("route") == "sleep" and "status" in l and TRACE_ID in
                      l.get("logging.googleapis.com/trace", ""))
    assert line["method"] == "GET" and line["status"] == 200 and "duration_ms" in line, line
    # the handler's own line, logged on the worker thread, carries it too
    d.wait_log(lambda l: l.get("message") == "sleeping 1 ms" and TRACE_ID in
               l.get("logging.googleapis.com/trace", ""))


def sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_0(d):
    inflight = Background(d, "GET", "/sleep?ms=1500")
    d.wait_log(lambda l: l.get("message") == "sleeping 1500 ms")
    d.proc.send_signal(signal.SIGTERM)
    d.wait_log(lambda l: l.get("message", "").startswith("shutting down"))

    def refused():
        try:
            socket.create_connection(("127.0.0.1", d.port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    wait_until(refused, 5, "the listener to close")
    assert inflight.thread.is_alive() or inflight.result is not None
    status, _, body = inflight.join(20)
    assert status == 200 and json.loads(body)["slept_ms"] == 1500, (status, body)
    rc = d.proc.wait(timeout=30)
    assert rc == 0, "exit code %d; stderr: %s" % (rc, "".join(d.stderr))


def a_handler_outliving_the_drain_deadline_makes_the_process_leave_at_once(_):
    d = Daemon(BIZPULSE_WORKERS=1, TESTD_DRAIN_MS=300)
    try:
        Background(d, "GET", "/sleep?ms=8000")
        d.wait_log(lambda l: l.get("message") == "sleeping 8000 ms")
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(timeout=5)  # well before the handler would finish
        assert rc == 1, "exit code %d" % rc
        d.wait_log(lambda l: "drain deadline passed" in l.get("message", ""))
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def every_log_line_is_json_and_sanitizers_reported_nothing(d):
    for t in d.readers:
        t.join(10)
    assert not d.bad_lines, d.bad_lines[:5]
    found, text = d.sanitizer_report()
    assert not found, text


TESTS = [
    healthz_answers_while_every_worker_is_busy_and_a_full_queue_answers_503_busy,
    metrics_is_prometheus_text_with_requests_by_route_and_status,
    unknown_route_is_404_json,
    wrong_method_on_a_known_path_is_405_json_with_allow,
    a_body_within_the_cap_is_echoed,
    a_body_over_the_cap_is_413_json,
    a_100_mb_content_length_is_refused_413_json_without_reading_the_body,
    a_chunked_body_over_the_cap_is_413_json,
    a_handler_error_is_passed_through_as_json,
    query_parameters_are_percent_decoded,
    the_traceparent_trace_id_is_in_the_request_log_line,
    sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_0,
    a_handler_outliving_the_drain_deadline_makes_the_process_leave_at_once,
    every_log_line_is_json_and_sanitizers_reported_nothing,
]


def main():
    d = Daemon(BIZPULSE_WORKERS=2, TESTD_QUEUE_MAX=1, BIZPULSE_BODY_MAX=BODY_MAX, TESTD_DRAIN_MS=10000)
    failures = 0
    try:
        for i, test in enumerate(TESTS, 1):
            try:
                test(d)
                print("ok %d - %s" % (i, test.__name__), flush=True)
            except Exception as e:
                failures += 1
                print("not ok %d - %s" % (i, test.__name__), flush=True)
                for line in ("%s: %s" % (type(e).__name__, e)).splitlines()[:40]:
                    print("#   " + line, flush=True)
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
    print("1..%d" % len(TESTS))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
