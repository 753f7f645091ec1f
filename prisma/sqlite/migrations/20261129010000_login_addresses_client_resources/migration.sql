-- CreateTable
CREATE TABLE "LoginAddress" (
    "userId" TEXT NOT NULL,
    "address" TEXT NOT NULL,
    "lastSuccessAt" DATETIME NOT NULL,

    PRIMARY KEY ("userId", "address"),
    CONSTRAINT "LoginAddress_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- AlterTable (SQLite adds a NOT NULL column with a default in place: no table copy)
ALTER TABLE "LoginFailure" ADD COLUMN "forgiven" BOOLEAN NOT NULL DEFAULT false;

-- AlterTable
ALTER TABLE "Client" ADD COLUMN "resources" TEXT NOT NULL DEFAULT '';

-- CreateIndex
CREATE INDEX "LoginAddress_lastSuccessAt_idx" ON "LoginAddress"("lastSuccessAt");
