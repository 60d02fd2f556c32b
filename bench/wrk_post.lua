-- wrk script of bench/http.py: POST the JSON body in $WRK_BODY on every request, and print a
-- one-line JSON summary at the end (exact percentiles in microseconds, request and error counts).
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"

-- With $WRK_BODIES_FILE (one JSON body per line; bench/batching.py), each request takes the
-- next body in turn, so the server sees distinct texts rather than one repeated.
local bodies_file = os.getenv("WRK_BODIES_FILE")
if bodies_file then
  local bodies = {}
  for line in io.lines(bodies_file) do
    bodies[#bodies + 1] = line
  end
  local counter = 0
  function request()
    counter = counter + 1
    return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
