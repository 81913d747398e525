-- wrk script: POST a client-credentials token request, Basic or form credentials
-- (BENCH_AUTH = base64 "id:secret" for Basic; BENCH_FORM = the whole form otherwise),
-- and print one parseable result line with the latency percentiles.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Basic " .. auth
  wrk.body = "grant_type=client_credentials"
else
  wrk.body = os.getenv("BENCH_FORM")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
