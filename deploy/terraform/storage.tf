# Ferry stages each validated partition here before the BigQuery load job; objects are only
# needed for minutes, so a lifecycle rule deletes them.
resource "google_storage_bucket" "staging" {
  name                        = "${var.project_id}-${local.name}-staging"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.staging_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # Noncurrent versions (overwritten staging files) go too.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
    }
    action {
      type = "Delete"
    }
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  depends_on = [google_project_service.apis]
}

# Access logs of the staging bucket (who read staged personal data).
resource "google_storage_bucket" "access_logs" {
  # checkov:skip=CKV_GCP_62:This is the access-log bucket itself; logging it to itself would loop.
  name                        = "${var.project_id}-${local.name}-access-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 400
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "ferry_stages" {
  bucket = google_storage_bucket.staging.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.ferry.email}"
}
