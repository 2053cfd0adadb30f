-- wrk: POST the same junk body (16 KB, the largest /ipn reads) as fast as it goes.
local body = string.rep("orderId=junk&x=", 1092)

function request()
  return wrk.format("POST", "/ipn", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
