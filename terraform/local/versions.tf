terraform {
  required_version = ">= 1.10.0"

  required_providers {
    kubectl = {
      source  = "gavinbunney/kubectl"
      version = "1.19.0"
    }
  }

  # State lives in object storage: a lakehouse's own MinIO, or any S3 service. The bucket, key,
  # endpoint and CA come from the backend file `lakehouse provision` writes (-backend-config);
  # the credentials from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
  backend "s3" {
    region                      = "us-east-1"
    use_path_style              = true
    use_lockfile                = true
    skip_credentials_validation = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
    skip_requesting_account_id  = true
  }
}
