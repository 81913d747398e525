-- wrk script: rotate the secret of a different app on every request (SPEC 12: rotations on
-- distinct apps). BENCH_PATHS names a file of rotate paths, one per line; BENCH_TOKEN is a
-- bearer token; BENCH_THREADS is wrk's -t. Thread k takes lines k, k+t, k+2t, ... so no app
-- is rotated twice; past the end of the file requests would repeat (and fail with 409).
local created = 0

setup = function(thread)
  thread:set("index", created)
  created = created + 1
end

init = function(args)
  paths = {}
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    table.insert(paths, line)
  end
  stride = tonumber(os.getenv("BENCH_THREADS"))
  next_line = index + 1
  headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
    ["Content-Type"] = "application/json",
  }
end

request = function()
  local path = paths[next_line] or paths[1]
  next_line = next_line + stride
  return wrk.format("POST", path, headers, "{}")
end

dofile("bench/result.lua")
