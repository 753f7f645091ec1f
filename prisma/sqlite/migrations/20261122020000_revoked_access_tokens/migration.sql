-- CreateTable
CREATE TABLE "RevokedAccessToken" (
    "jti" TEXT NOT NULL PRIMARY KEY,
    "clientId" TEXT NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "revokedAt" DATETIME NOT NULL
);

-- CreateIndex
CREATE INDEX "RevokedAccessToken_expiresAt_idx" ON "RevokedAccessToken"("expiresAt");

