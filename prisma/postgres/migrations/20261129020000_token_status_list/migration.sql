-- AlterTable
ALTER TABLE "Session" ADD COLUMN     "statusIdx" BIGINT;

-- AlterTable
ALTER TABLE "RevokedAccessToken" ADD COLUMN     "statusIdx" BIGINT;

-- CreateTable
CREATE TABLE "StatusIndexCounter" (
    "id" INTEGER NOT NULL,
    "next" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "StatusIndexCounter_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Session_statusIdx_key" ON "Session"("statusIdx");

-- CreateIndex
CREATE INDEX "Session_revokedAt_statusIdx_idx" ON "Session"("revokedAt", "statusIdx");


-- The single counter row status list indices are reserved from (see StatusIndexCounter in schema.prisma).
INSERT INTO "StatusIndexCounter" ("id", "next") VALUES (1, 0);
