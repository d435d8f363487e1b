variable "project_id" {
  description = "The GCP project Ferry runs in."
  type        = string
}

variable "environment" {
  description = "dev or prod; part of resource names and labels."
  type        = string
  default     = "prod"
  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "region" {
  description = "Region for Cloud SQL and Artifact Registry. EU by default: the catalog source bucket is in eu-west-1 and contracts may hold personal data."
  type        = string
  default     = "europe-west1"
}

variable "bigquery_location" {
  description = "BigQuery location for Ferry's datasets. EU (multi-region) keeps personal data in the EU."
  type        = string
  default     = "EU"
}

variable "bigquery_datasets" {
  description = "BigQuery datasets Ferry manages, one per contract namespace (e.g. catalog for catalog.product_catalog), with the owner team."
  type = map(object({
    owner_team  = string
    description = string
  }))
  default = {
    catalog = {
      owner_team  = "catalog"
      description = "Product catalog, published daily by the catalog team."
    }
  }
}

variable "feature_teams" {
  description = "Feature teams that call Ferry; each gets a service account that may call Ferry with an OIDC ID token (principal sa:<email>)."
  type        = set(string)
  default     = ["catalog", "a", "b"]
}

variable "network_id" {
  description = "Self link of the VPC that GKE runs in; Cloud SQL gets a private IP on it (private services access must be set up on this network)."
  type        = string
}

variable "gke_namespace" {
  description = "Kubernetes namespace of Ferry's pods (deploy/kubernetes)."
  type        = string
  default     = "ferry"
}

variable "gke_service_account" {
  description = "Kubernetes service account of Ferry's pods (deploy/kubernetes)."
  type        = string
  default     = "ferry"
}

variable "db_tier" {
  description = "Cloud SQL machine tier for the registry."
  type        = string
  default     = "db-custom-2-7680"
}

variable "staging_expiration_hours" {
  description = "Ferry's per-publication staging tables expire after this many hours (a publish needs them for minutes); keep equal to warehouse.bigquery.staging_expiration_hours."
  type        = number
  default     = 24
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key for CMEK on the BigQuery datasets; null uses Google-managed keys."
  type        = string
  default     = null
}
