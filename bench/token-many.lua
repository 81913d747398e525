-- wrk script: client-credentials token requests from many clients in random order (the cold
-- path: most clients are not in the client cache). BENCH_CREDENTIALS names a file of base64
-- "id:secret" Basic credentials, one per line (rekey-bench-seed's fourth argument writes it).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=client_credentials"

init = function(args)
  credentials = {}
  for line in io.lines(os.getenv("BENCH_CREDENTIALS")) do
    table.insert(credentials, line)
  end
  -- Each thread its own sequence (wrk seeds every thread's generator alike).
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16))
end

-- wrk.format uses the headers it is given instead of wrk.headers, so both go in.
headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

request = function()
  headers["Authorization"] = "Basic " .. credentials[math.random(#credentials)]
  return wrk.format(nil, nil, headers, nil)
end

dofile("bench/result.lua")
