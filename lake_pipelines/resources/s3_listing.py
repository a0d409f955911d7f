"""The S3 client behind the landing sensor's listings (imported only when S3 is listed)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from dagster_aws.s3 import S3Resource


class LandingS3Resource(S3Resource):
    """`S3Resource` that also honours the lake's S3 addressing style.

    MinIO and most S3-compatible servers behind a host name want path-style requests, which
    botocore does not choose by itself for a custom endpoint.
    """

    addressing_style: str = "auto"

    def get_client(self) -> Any:
        if self.addressing_style == "auto":
            return super().get_client()
        session = boto3.session.Session(profile_name=self.profile_name)
        return session.client(
            "s3",
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=BotoConfig(
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                s3={"addressing_style": self.addressing_style},
            ),
        )
