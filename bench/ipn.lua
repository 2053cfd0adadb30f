-- wrk: POST a different signed IPN on every request, from the file IPN_BODIES (one per line).
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  bodies = {}
  for line in io.lines(os.getenv("IPN_BODIES")) do
    bodies[#bodies + 1] = line
  end
  sent = 0
end

function request()
  -- Two wrk threads interleave through the list, so no body is sent twice.
  local index = (sent * 2 + tid) % #bodies + 1
  sent = sent + 1
  return wrk.format("POST", "/ipn", {["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[index])
end
