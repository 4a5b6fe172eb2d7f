package agent

import "github.com/valyala/fasthttp"

// routeRestProxy serves the Confluent REST Proxy-compatible produce API
// (POST /topics/{topic}, /topics/{topic}/partitions/{p}, /v3/clusters...).
// It reports whether it handled the request.
func (a *Agent) routeRestProxy(ctx *fasthttp.RequestCtx, path, method string) (*apiError, bool) {
	return nil, false
}
