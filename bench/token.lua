-- wrk script: POST a client-credentials token request, Basic or form credentials
-- (BENCH_AUTH = base64 "id:secret" for Basic; BENCH_FORM = the whole form otherwise),
-- and print one parseable result line with the latency percentiles (bench/result.lua).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Basic " .. auth
  wrk.body = "grant_type=client_credentials"
else
  wrk.body = os.getenv("BENCH_FORM")
end

dofile("bench/result.lua")
