variable "site" {
  description = "The lakehouse site the hosts make up: the middle label of every host name, and lakehouse_site."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.site))
    error_message = "site must be a DNS label: lowercase letters, digits and hyphens, 2 to 32 characters."
  }
}

variable "hosts" {
  description = "The provisioned hosts by DNS name: the service groups each runs and its inventory variables (strings)."
  type = map(object({
    groups = list(string)
    vars   = map(string)
  }))

  validation {
    condition     = alltrue([for host in values(var.hosts) : length(setsubtract(host.groups, local.service_groups)) == 0])
    error_message = "A host names a group that is not a service group (object_storage, catalog_db, iceberg_catalog, query_coordinator, query_workers, orchestrator, observability)."
  }
}

variable "kubernetes" {
  description = "The cluster prepared for the Helm engine, or null."
  type = object({
    api_server      = string
    ca_certificate  = string
    namespace       = string
    service_account = string
  })
  default = null
}

variable "state" {
  description = "Where the configuration's state lives, as given to its backend."
  type = object({
    backend  = string
    bucket   = string
    key      = string
    endpoint = string
  })
}

variable "object_storage_port" {
  description = "MinIO's S3 port on the object storage hosts (the minio role's default)."
  type        = number
  default     = 9000
}
