"""Schemas of ``POST /predict`` and ``POST /generate``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.schemas.common import ModelName, ModelRef, Seed, StrictModel, Text, Version


class PredictRequest(StrictModel):
    model_config = StrictModel.model_config | {
        "json_schema_extra": {"examples": [{"model": "demo", "text": "我爱", "k": 5}]}
    }

    model: ModelName
    version: Version | None = None
    text: Text
    k: int = Field(5, ge=1, description="How many candidates.")


class Candidate(BaseModel):
    token: str
    id: int
    probability: float


class PredictResponse(ModelRef):
    tokens: list[str] = Field(description="The context as the model segmented it.")
    ids: list[int]
    candidates: list[Candidate] = Field(description="Most probable next tokens first.")


class GenerateRequest(StrictModel):
    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {"model": "demo", "prompt": "我爱", "max_tokens": 10, "temperature": 0.8, "seed": 0}
            ]
        }
    }

    model: ModelName
    version: Version | None = None
    prompt: Text
    max_tokens: int = Field(20, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=100.0, description="0 is greedy.")
    top_k: int | None = Field(None, ge=1)
    seed: Seed | None = Field(None, description="Same seed, same text.")


class GenerateResponse(ModelRef):
    prompt_tokens: list[str]
    tokens: list[str] = Field(description="The generated tokens only.")
    ids: list[int]
    text: str = Field(description="The prompt followed by the generated tokens.")
