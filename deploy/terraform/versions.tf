terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.10"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
  # State holds the Cloud SQL user's password: keep it in a private, versioned bucket.
  # backend "gcs" { bucket = "my-org-tfstate"; prefix = "ferry" }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
