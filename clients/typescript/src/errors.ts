/**
 * Ferry's errors as data: every failed call carries a stable `reason` (google.rpc.ErrorInfo,
 * domain "ferry", listed in ferry.proto) and string metadata, plus the request fields that were
 * wrong. Decide from these, never from the message, which is for people and may change.
 */
import { ConnectError } from "@connectrpc/connect";

import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export const ERROR_DOMAIN = "ferry";

export interface FerryErrorDetails {
  /** Such as "DATASET_NOT_FOUND" or "PUBLICATION_REJECTED". */
  reason: string;
  /** What the reason is about, such as `dataset` or `publication_id`. */
  metadata: Record<string, string>;
  /** Wrong request fields, by field name, with what is wrong with each. */
  fieldViolations: Record<string, string>;
}

/** Ferry's details of `error`, or undefined when it is not an error Ferry answered. */
export function errorDetails(error: unknown): FerryErrorDetails | undefined {
  if (!(error instanceof ConnectError)) {
    return undefined;
  }
  const info = error.findDetails(ErrorInfoSchema).find((i) => i.domain === ERROR_DOMAIN);
  if (info === undefined) {
    return undefined;
  }
  const fieldViolations: Record<string, string> = {};
  for (const bad of error.findDetails(BadRequestSchema)) {
    for (const violation of bad.fieldViolations) {
      fieldViolations[violation.field] = violation.description;
    }
  }
  return { reason: info.reason, metadata: { ...info.metadata }, fieldViolations };
}
