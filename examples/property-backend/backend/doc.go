// Package backend is a reference property backend: the order API that the
// mini-program, the home-service providers and the property's own ops console reach
// through signgate. It keeps everything in memory and is an example for the gateway to
// front, not part of the gateway.
//
// The API, as signgate's roles in examples/config.demo.yaml allow it:
//
//	GET  /api/services             the home services an owner can book
//	POST /api/orders               book one: {"name","phone","address","service_type","appointment_time"}
//	GET  /api/orders/{id}          one order, with its staff and status history
//	POST /api/orders/{id}/staff    assign staff: {"name","phone","photo","skills"}
//	PUT  /api/orders/{id}/status   move the status: {"status":"已接單"}
//	GET  /healthz                  for the gateway's active health check
//
// An order starts 待接單 and moves 待接單 → 已接單 → 服務中 → 已完成; it can be
// 已取消 until the service starts. Any other move is refused with 400
// invalid_transition; setting the status it already has is a no-op, so a PUT the
// gateway retries after a lost connection does no harm. Bad input gets 400
// bad_request with a message naming the field. Errors use signgate's JSON envelope,
// {"code","message","request_id"}, with the X-Request-Id the gateway sent.
//
// The backend trusts its callers' identity to the gateway: X-Signgate-Client (which
// app or provider) and X-WX-OpenID (which owner, from her WeChat-login session; the
// gateway removes a caller's own copy). An order booked with an openid is the
// owner's: another owner asking for it gets 404 not_found, the answer an order that
// does not exist gets, so ids cannot be probed. Whether an owner may see an order is
// the backend's decision; the gateway only says, reliably, who is asking.
package backend
