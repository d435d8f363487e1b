/**
 * Ferry's TypeScript client: the generated ferry.v1 service over Connect's gRPC transport for
 * Node, with the bearer token on every call.
 */
import { type Client, type Interceptor, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { FerryService } from "./gen/ferry/v1/ferry_pb.js";

export * from "./gen/ferry/v1/ferry_pb.js";
export { ERROR_DOMAIN, type FerryErrorDetails, errorDetails } from "./errors.js";

export type FerryClient = Client<typeof FerryService>;

/** A client for `baseUrl` (e.g. "http://127.0.0.1:50051" or "https://ferry.internal") sending `token`. */
export function createFerryClient(baseUrl: string, token?: string): FerryClient {
  const bearer: Interceptor = (next) => async (request) => {
    if (token) {
      request.header.set("authorization", `Bearer ${token.trim()}`);
    }
    return next(request);
  };
  const transport = createGrpcTransport({ baseUrl, interceptors: [bearer] });
  return createClient(FerryService, transport);
}
