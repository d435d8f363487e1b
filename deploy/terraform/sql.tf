# The registry: contracts, the ledger, grants, tokens (digests only) and the audit log.
resource "google_sql_database_instance" "registry" {
  # checkov:skip=CKV_GCP_6:TLS is required by ssl_mode = "ENCRYPTED_ONLY"; this check looks for require_ssl, which google provider 6 removed.
  name                = "${local.name}-registry"
  database_version    = "POSTGRES_18"
  region              = var.region
  deletion_protection = true

  settings {
    tier              = var.db_tier
    availability_type = var.environment == "prod" ? "REGIONAL" : "ZONAL"
    disk_autoresize   = true
    user_labels       = local.labels

    ip_configuration {
      # Private IP only, on the GKE network; TLS required even there.
      ipv4_enabled    = false
      private_network = var.network_id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "02:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = 30
      }
    }

    maintenance_window {
      day  = 7
      hour = 3
    }

    insights_config {
      query_insights_enabled = true
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_sql_database" "ferry" {
  name     = "ferry"
  instance = google_sql_database_instance.registry.name
}

# A password user for the migrations and the server. (IAM database authentication is enabled
# for people; sqlx has no IAM token provider, so the server uses this password from Secret
# Manager.)
resource "random_password" "registry" {
  length  = 40
  special = false
}

resource "google_sql_user" "ferry" {
  name     = "ferry"
  instance = google_sql_database_instance.registry.name
  password = random_password.registry.result
}
