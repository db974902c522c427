"""Distribution-spec client: auth challenges, tokens, credentials, mirrors, TLS,
retries and resume, redirects, byte accounting hooks."""

from sandpull.registry.blob import BlobStream
from sandpull.registry.challenge import Challenge, parse_challenges
from sandpull.registry.client import MAX_MANIFEST_SIZE, FetchedManifest, RegistryClient
from sandpull.registry.config import Endpoint, Mirror, RegistriesConfig, RegistryEntry
from sandpull.registry.credentials import Credential, CredentialStore, canonical_host
from sandpull.registry.transport import RetryPolicy

__all__ = [
    "MAX_MANIFEST_SIZE",
    "BlobStream",
    "Challenge",
    "Credential",
    "CredentialStore",
    "Endpoint",
    "FetchedManifest",
    "Mirror",
    "RegistriesConfig",
    "RegistryClient",
    "RegistryEntry",
    "RetryPolicy",
    "canonical_host",
    "parse_challenges",
]
