{{/* Release-scoped name, capped at 63 characters as Kubernetes names must be. */}}
{{- define "mlgrid.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mlgrid.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "tracking"). */}}
{{- define "mlgrid.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mlgrid.image" -}}
{{- if not .Values.image.repository -}}
{{- fail "set image.repository to where you pushed mlgrid's image (make image && make push REGISTRY=registry.example.com/ml, then --set image.repository=registry.example.com/ml/mlgrid): no public registry publishes it" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Refusals that must stop an install before anything is created. */}}
{{- define "mlgrid.validate" -}}
{{- $_ := include "mlgrid.image" . -}}
{{- if not .Values.allowDefaultPasswords -}}
{{- if and .Values.postgresql.enabled (not .Values.store.uri) (not .Values.store.existingSecret) (eq .Values.postgresql.password "mlgrid") -}}
{{- fail "postgresql.password is the chart's default: set a real one (or store.uri / store.existingSecret), or allowDefaultPasswords=true for a throwaway trial" -}}
{{- end -}}
{{- if and .Values.minio.enabled (eq .Values.minio.rootPassword "mlgrid-secret") -}}
{{- fail "minio.rootPassword is the chart's default: set a real one, or allowDefaultPasswords=true for a throwaway trial" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.ingress.http.enabled (not .Values.gateway.rest.enabled) -}}
{{- fail "ingress.http routes to MLflow's REST API, which gateway.rest.enabled=false turns off: enable both or neither" -}}
{{- end -}}
{{- with .Values.auth -}}
{{- if and .enabled (not .existingSecret) -}}
{{- if and .secret (lt (len .secret) 16) -}}
{{- fail "auth.secret must be at least 16 characters (leave it empty and the chart generates one)" -}}
{{- end -}}
{{- if not .adminUsername -}}
{{- fail "auth.adminUsername must be set: the admin user created at first start" -}}
{{- end -}}
{{- if and .adminPassword (lt (len .adminPassword) 12) -}}
{{- fail "auth.adminPassword must be at least 12 characters (leave it empty and the chart generates one)" -}}
{{- end -}}
{{- end -}}
{{- if and .enabled .oidc.issuer (or (not .oidc.audience) (not .oidc.jwksUrl)) -}}
{{- fail "auth.oidc.issuer needs auth.oidc.audience (mlgrid's client id at the provider) and auth.oidc.jwksUrl (the provider's jwks_uri)" -}}
{{- end -}}
{{- if and (not .enabled) .oidc.issuer -}}
{{- fail "auth.oidc is set but auth.enabled=false: tokens would not be checked; enable auth or clear auth.oidc" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The pod- and container-level security settings every pod of the chart gets. */}}
{{- define "mlgrid.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "mlgrid.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* host:port of the gateway inside the cluster (services reach each other through it). */}}
{{- define "mlgrid.gatewayTarget" -}}
{{- printf "%s-gateway:%d" (include "mlgrid.fullname" .) (int .Values.gateway.port) -}}
{{- end -}}

{{- define "mlgrid.storeSecret" -}}
{{- default (printf "%s-store" (include "mlgrid.fullname" .)) .Values.store.existingSecret -}}
{{- end -}}

{{- define "mlgrid.s3Secret" -}}
{{- default (printf "%s-s3" (include "mlgrid.fullname" .)) .Values.s3.existingSecret -}}
{{- end -}}

{{- define "mlgrid.storeUri" -}}
{{- if .Values.store.uri -}}
{{- .Values.store.uri -}}
{{- else if .Values.postgresql.enabled -}}
{{- $pg := .Values.postgresql -}}
{{- /* urlquery encodes @ : / ? # % (and a space as "+", which a URI's user part reads
  literally: turn it into %20; a literal "+" was already %2B). */ -}}
{{- $user := $pg.username | urlquery | replace "+" "%20" -}}
{{- $password := $pg.password | urlquery | replace "+" "%20" -}}
{{- printf "postgresql://%s:%s@%s-postgresql:5432/%s" $user $password (include "mlgrid.fullname" .) ($pg.database | urlquery | replace "+" "%20") -}}
{{- else -}}
{{- fail "set store.uri or store.existingSecret, or enable postgresql" -}}
{{- end -}}
{{- end -}}

{{- define "mlgrid.artifactRoot" -}}
{{- if .Values.defaultArtifactRoot -}}
{{- .Values.defaultArtifactRoot -}}
{{- else if .Values.minio.enabled -}}
{{- printf "s3://%s/artifacts" .Values.minio.bucket -}}
{{- else -}}
{{- fail "set defaultArtifactRoot (s3://bucket/prefix), or enable minio" -}}
{{- end -}}
{{- end -}}

{{- define "mlgrid.s3Endpoint" -}}
{{- if .Values.s3.endpointUrl -}}
{{- .Values.s3.endpointUrl -}}
{{- else if .Values.minio.enabled -}}
{{- printf "http://%s-minio:9000" (include "mlgrid.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Environment that points a process at the tracking/registry stores (from the Secret). */}}
{{- define "mlgrid.storeEnv" -}}
- name: MLGRID_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.storeSecret" . }}
      key: backend-store-uri
- name: MLGRID_REGISTRY_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.storeSecret" . }}
      key: registry-store-uri
      optional: true
{{- end -}}

{{- define "mlgrid.s3Env" -}}
{{- with (include "mlgrid.s3Endpoint" .) }}
- name: MLGRID_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.s3Secret" . }}
      key: AWS_ACCESS_KEY_ID
      optional: true
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.s3Secret" . }}
      key: AWS_SECRET_ACCESS_KEY
      optional: true
{{- end -}}

{{- define "mlgrid.projectsServiceAccount" -}}
{{- if .Values.projects.serviceAccount.create -}}
{{- default (printf "%s-projects" (include "mlgrid.fullname" .)) .Values.projects.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.projects.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Namespace of the Jobs the projects service's kubernetes backend creates. */}}
{{- define "mlgrid.projectsJobNamespace" -}}
{{- default .Release.Namespace .Values.projects.kubernetes.namespace -}}
{{- end -}}


{{/* Name of the projects service's state claim. */}}
{{/* Non-empty when the projects pod mounts the state claim: one replica with persistence on
  (a ReadWriteOnce volume cannot follow several replicas; they share their runs' leases in the
  database, and each keeps working copies and caches in its own emptyDir). */}}
{{- define "mlgrid.projectsVolumeClaimed" -}}
{{- $p := .Values.projects -}}
{{- if and (le (int $p.replicas) 1) (or $p.persistence.enabled $p.stateClaim) -}}true{{- end -}}
{{- end -}}

{{- define "mlgrid.projectsClaim" -}}
{{- $p := .Values.projects.persistence -}}
{{- default (default (printf "%s-projects-state" (include "mlgrid.fullname" .)) .Values.projects.stateClaim) $p.existingClaim -}}
{{- end -}}

{{- define "mlgrid.authSecret" -}}
{{- default (printf "%s-auth" (include "mlgrid.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* Environment of every mlgrid process: auth on with the shared secret, admin and store from
  Secrets (never literal values), or, with auth off, leave to serve open on the pod's address. */}}
{{- define "mlgrid.authEnv" -}}
{{- $a := .Values.auth -}}
{{- if $a.enabled }}
- name: MLGRID_AUTH
  value: "true"
- name: MLGRID_AUTH_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.authSecret" . }}
      key: secret
- name: MLGRID_AUTH_ADMIN_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.authSecret" . }}
      key: admin-username
- name: MLGRID_AUTH_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.authSecret" . }}
      key: admin-password
- name: MLGRID_AUTH_STORE_URI
  valueFrom:
    secretKeyRef:
      {{- if $a.storeUri }}
      name: {{ include "mlgrid.authSecret" . }}
      key: store-uri
      {{- else }}
      name: {{ include "mlgrid.storeSecret" . }}
      key: backend-store-uri
      {{- end }}
{{- with $a.defaultPermission }}
- name: MLGRID_AUTH_DEFAULT_PERMISSION
  value: {{ . | quote }}
{{- end }}
{{- with $a.oidc }}
{{- if .issuer }}
- name: MLGRID_AUTH_OIDC_ISSUER
  value: {{ .issuer | quote }}
- name: MLGRID_AUTH_OIDC_AUDIENCE
  value: {{ .audience | quote }}
- name: MLGRID_AUTH_OIDC_JWKS_URL
  value: {{ .jwksUrl | quote }}
{{- with .usernameClaim }}
- name: MLGRID_AUTH_OIDC_USERNAME_CLAIM
  value: {{ . | quote }}
{{- end }}
{{- with .groupsClaim }}
- name: MLGRID_AUTH_OIDC_GROUPS_CLAIM
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- else }}
# auth.enabled=false: serve without authentication on the pod's address, on purpose.
- name: MLGRID_ALLOW_OPEN
  value: "true"
{{- end }}
{{- end -}}
